"""
The adaptive rate limiter's state, shared by the sync and async limiters.

Everything here is I/O-free and thread-safe: the AIMD state and the token
bucket behind one lock held for microseconds, the shared budget's bookkeeping
(when the next heartbeat is due, what it learnt), telemetry and events. The
public classes add only the waiting (``clock.sleep`` / ``asyncio.sleep``) and
the store call (``transact`` / ``await transact``).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .._clock import Clock
from .._telemetry import PACKAGE, counter, meter
from ..errors import RateLimitTimeoutError
from ..stores._protocol import Outcome, Snapshot
from ._aimd import AimdState, on_success, on_throttle, reserve, settle
from ._rate_config import RateConfig
from ._rate_events import (
    RateChangeEvent,
    RateLimiterEvent,
    RateLimiterListener,
    RateStoreErrorEvent,
    notify,
)
from ._rate_shared import Membership, heartbeat

__all__ = ["Heartbeat", "RateCore"]

logger = logging.getLogger("pipeline_reliability.limits")
Heartbeat = Callable[[Snapshot], Outcome[Membership]]
_gauges: dict[str, Any] = {}
_gauges_lock = threading.Lock()


def _rate_gauge() -> Any:
    # A synchronous gauge where the installed API has one (1.27+), else a histogram
    # of the rates set: either way the current rate is visible per limiter.
    name = f"{PACKAGE}.limits.rate"
    with _gauges_lock:
        found = _gauges.get(name)
        if found is None:
            make = getattr(meter(), "create_gauge", None) or meter().create_histogram
            found = make(name, unit="1/s", description="Calls per second a rate limiter admits")
            _gauges[name] = found
        return found


class RateCore:
    """The state of one limiter instance (see :class:`AdaptiveRateLimiter`)."""

    def __init__(self, config: RateConfig, clock: Clock | None, *, shared: bool) -> None:
        self.config = config
        self.mono: Callable[[], float] = time.monotonic if clock is None else clock.monotonic
        self._lock = threading.Lock()
        self._aimd = AimdState(config.rate)
        self._burst = config.burst
        self._tokens, self._at = config.burst, self.mono()
        self.shared = shared
        self._members = 1
        self._cap = math.inf  # the share taken at the last heartbeat
        # A shared limiter admits at most its min_rate until it has seen the document.
        self._fallback = shared
        self._rate = self._local_rate()
        self._sync_due = -math.inf
        self._busy = False
        self._last_ok = -math.inf
        self._publish = False
        self._heard: datetime | None = None
        self.listeners: tuple[RateLimiterListener, ...] = ()
        self._attrs = {"limiter": config.name}
        self._c_throttles = counter("limits.rate.throttles", "Throttling signals seen")
        self._c_timeouts = counter("limits.rate.timeouts", "Acquires that timed out")
        self._c_heartbeats = counter("limits.rate.heartbeats", "Shared-budget heartbeats")
        self._c_errors = counter("limits.rate.store_errors", "Shared-budget store failures")
        self._gauge = _rate_gauge()
        self._record_rate()

    # ------------------------------------------------------------------ reading

    @property
    def rate(self) -> float:
        """Calls per second this instance admits now."""
        return self._rate

    @property
    def fleet_rate(self) -> float:
        """The AIMD rate (fleet-wide when shared)."""
        return self._aimd.rate

    @property
    def members(self) -> int:
        """Live instances sharing the budget, as of the last heartbeat (1 unshared)."""
        return self._members

    def _local_rate(self) -> float:
        fleet = self._aimd.rate
        if self._fallback:
            return min(fleet, self.config.aimd.min_rate) / self._members
        # An increase since the last heartbeat waits for the next one: the
        # others planned with the share this instance took then.
        return min(fleet / self._members, self._cap)

    def _record_rate(self) -> None:
        method = getattr(self._gauge, "set", None) or self._gauge.record
        method(self._rate, self._attrs)

    # ------------------------------------------------------------------ tokens

    def take(self, max_wait: float) -> float:
        """
        Reserve the next token; return the seconds to wait for it.

        Raises:
            RateLimitTimeoutError: the wait would exceed ``max_wait`` (nothing reserved).
        """
        with self._lock:
            self._tokens, self._at, wait = reserve(
                self._tokens, self._at, self._rate, self._burst, self.mono(), max_wait=max_wait
            )
        if wait > max_wait:
            self._c_timeouts.add(1, self._attrs)
            raise RateLimitTimeoutError(self.config.name, retry_after=wait, timeout=max_wait)
        return wait

    # ------------------------------------------------------------------ feedback

    def throttle(self, sent_at: float | None = None) -> bool:
        """Apply a throttling signal; return whether the rate decreased."""
        events: list[RateLimiterEvent] = []
        with self._lock:
            now = self.mono()
            new = on_throttle(self._aimd, self.config.aimd, now, sent_at=sent_at)
            decreased = new is not self._aimd
            if decreased:
                self._publish = self.shared
                self._change(new, now, "throttled", events)
        self._c_throttles.add(1, {**self._attrs, "decreased": decreased})
        self._deliver(events)
        return decreased

    def success(self) -> None:
        """Record a success: an additive increase once per calm ``cooldown``."""
        state = self._aimd
        now = self.mono()
        if on_success(state, self.config.aimd, now) is state:
            return  # the hot path: nothing due, no lock taken
        events: list[RateLimiterEvent] = []
        with self._lock:
            new = on_success(self._aimd, self.config.aimd, now)
            if new is not self._aimd:
                self._change(new, now, "increased", events)
        self._deliver(events)

    def _change(
        self, new: AimdState, now: float, reason: str, events: list[RateLimiterEvent]
    ) -> None:
        # Under the lock. Tokens earned so far were earned at the old rate.
        old = self._rate
        self._tokens, self._at = settle(self._tokens, self._at, old, self._burst, now)
        self._aimd = new
        self._rate = self._local_rate()
        if self._rate != old:
            self._record_rate()
            events.append(
                RateChangeEvent(
                    self.config.name, self.config.instance_id, reason, old, self._rate,
                    self._aimd.rate, self._members,
                )
            )

    def _deliver(self, events: list[RateLimiterEvent]) -> None:
        if events and self.listeners:
            for event in events:
                notify(self.listeners, event)

    # ------------------------------------------------------------------ shared budget

    def heartbeat_due(self) -> tuple[Heartbeat, bool] | None:
        """
        Claim the next heartbeat if one is due and none is running (single flight).

        Returns the ``transact`` callback and whether it publishes a throttle,
        or ``None``: then the caller goes on with the current share at once.
        """
        now = self.mono()
        if not self.shared or now < self._sync_due:
            return None  # lock-free: the common case
        with self._lock:
            if self._busy or now < self._sync_due:
                return None
            self._busy = True
            self._sync_due = now + self.config.share
            publish, self._publish = self._publish, False
        config = self.config
        fn = functools.partial(
            heartbeat, name=config.name, me=config.instance_id, share=config.share,
            lease=config.lease, publish=publish, fleet_rate=self._aimd.rate,
            min_rate=config.aimd.min_rate,
        )
        return fn, publish

    def heartbeat_done(self, membership: Membership, published: bool) -> None:
        """Adopt what a heartbeat learnt: the member count and another's throttle."""
        if not membership.joined:
            self.heartbeat_failed(f"more than {membership.members} live members", published)
            return
        self._c_heartbeats.add(1, self._attrs)
        events: list[RateLimiterEvent] = []
        with self._lock:
            self._busy = False
            now = self.mono()
            self._last_ok = now
            heard = membership.throttled_at
            if heard is not None and (self._heard is None or heard > self._heard):
                self._heard = heard
                # One decrease per overload: an instance that decreased within the
                # last period has already reacted to what the others saw.
                if now - self._aimd.decreased_at >= self.config.share:
                    new = on_throttle(self._aimd, self.config.aimd, now)
                    if new is not self._aimd:
                        self._change(new, now, "fleet_throttled", events)
            self._fallback = False
            self._members = membership.members
            self._cap = membership.rate
            self._change(self._aimd, now, "share", events)
        self._deliver(events)

    def heartbeat_failed(self, error: BaseException | str, published: bool) -> None:
        """
        Keep the last known share after a failed heartbeat; past the lease, fall back.

        The lease runs three ``share`` periods: until then the others still
        count this instance, so its share is still its own. After that they no
        longer do, and it admits at most ``min_rate`` divided by the members it knew.
        """
        self._c_errors.add(1, self._attrs)
        events: list[RateLimiterEvent] = []
        with self._lock:
            self._busy = False
            self._publish = self._publish or published
            now = self.mono()
            if not self._fallback and now - self._last_ok >= self.config.lease:
                self._fallback = True
                self._change(self._aimd, now, "store_fallback", events)
            events.insert(
                0,
                RateStoreErrorEvent(
                    self.config.name, self.config.instance_id, repr(error), self._rate
                ),
            )
        logger.warning(
            "rate limiter %r: shared-budget heartbeat failed; admitting %.3f calls/s meanwhile",
            self.config.name, self._rate,
            exc_info=error if isinstance(error, BaseException) else None,
            extra={"pipeline_reliability": {"limiter": self.config.name}},
        )
        self._deliver(events)

    def heartbeat_aborted(self, published: bool) -> None:
        """A heartbeat was interrupted by a non-store exception: free the single flight."""
        with self._lock:
            self._busy = False
            self._publish = self._publish or published
