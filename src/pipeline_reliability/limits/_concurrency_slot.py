"""The handle a holder works with: one slot of a concurrency limit, with its lease."""

from __future__ import annotations

import functools
import logging
import random
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from .._telemetry import log_failure, span
from ..errors import SlotLostError, StoreConflictError, StoreUnavailableError
from ..stores import Outcome, Snapshot, StateStore
from ._concurrency_events import SlotEvent, Telemetry
from ._concurrency_options import LimitConfig
from ._slots import Gone, Released, Renewed, check_held, decide_release, decide_renew

__all__ = ["RELEASE_ATTEMPTS", "RENEW_FRACTION", "Door", "Slot", "SlotBase", "local_contention"]

logger = logging.getLogger("pipeline_reliability.limits")

#: Auto-renewal runs every third of the lease: two renewals may fail in a row.
RENEW_FRACTION = 1 / 3
#: A release that meets contention is tried at least this many times (jittered backoff).
RELEASE_ATTEMPTS = 5
_CONFLICT_DELAY = 0.05
_MAX_PATIENCE = 10_000  # bounds the loop whatever the clock does
_RNG = random.Random()  # jitter only: no need for one per slot

R = TypeVar("R")


class Door:
    """
    The one way a limit object reaches its document: every call with its timeout.

    Transactions of one object run one at a time: the threads of a process
    sharing a limit would otherwise abort each other's transactions on the
    one document (a Firestore transaction that loses retries, and a
    pessimistically locking server makes each loss cost a lock timeout).
    Across processes the store's own concurrency control decides. Plain
    reads are not serialised.
    """

    def __init__(self, store: StateStore, config: LimitConfig) -> None:
        self.store = store
        self.config = config
        self._one_at_a_time = threading.Lock()

    def get(self) -> Snapshot:
        c = self.config
        return self.store.get(c.collection, c.key, timeout=c.store_timeout)

    def transact(self, fn: Callable[[Snapshot], Outcome[R]]) -> R:
        c = self.config
        # The wait for our own turn is bounded too: a hung transaction of
        # another thread counts as contention, which callers poll through.
        if not self._one_at_a_time.acquire(timeout=c.store_timeout):
            raise local_contention(c)
        try:
            return self.store.transact(c.collection, c.key, fn, timeout=c.store_timeout)
        finally:
            self._one_at_a_time.release()

    def transact_patiently(self, fn: Callable[[Snapshot], Outcome[R]], rng: random.Random) -> R:
        """
        ``transact``, tried again with jittered backoff while it meets contention,
        for up to ``store_timeout`` (at least ``RELEASE_ATTEMPTS`` tries): a
        release that gave up would keep its slot taken until its lease ends.
        """
        clock = self.config.clock
        deadline = clock.monotonic() + self.config.store_timeout
        delay = _CONFLICT_DELAY
        for attempt in range(1, _MAX_PATIENCE):
            try:
                return self.transact(fn)
            except StoreConflictError:
                if attempt >= RELEASE_ATTEMPTS and clock.monotonic() >= deadline:
                    raise
                clock.sleep(rng.uniform(delay / 2, delay))
                delay = min(delay * 2, 1.0)
        return self.transact(fn)


def local_contention(config: LimitConfig) -> StoreConflictError:
    """The error of a transaction that waited ``store_timeout`` for its object's turn."""
    return StoreConflictError(
        f"{config.name}: another transaction of this limit object ran for "
        f"{config.store_timeout}s",
        attempts=0,
    )


class SlotBase:
    """
    What the sync and async slot share: identity, lease bookkeeping, outcomes.

    Attributes:
        name: The limit's name.
        owner: The owner id of the limit object that acquired the slot.
        slot_id: The slot's random id in the limit's document.
        acquired_at: When the slot was granted, in the store's time
            (``None`` for a bypassed slot).
        bypassed: ``True`` only for the slot handed out by
            ``on_store_error="fail_open"`` while the store failed: no slot is
            held in the store, and the caller runs unlimited.
    """

    def __init__(
        self,
        config: LimitConfig,
        telemetry: Telemetry,
        *,
        slot_id: str,
        acquired_at: datetime | None,
        expires_at: datetime | None,
        bypassed: bool = False,
    ) -> None:
        self._config = config
        self._telemetry = telemetry
        self.name = config.name
        self.owner = config.owner
        self.slot_id = slot_id
        self.acquired_at = acquired_at
        self.bypassed = bypassed
        self._state = threading.Lock()
        self._expires_at = expires_at
        self._ended = bypassed
        self._lost: str | None = None

    def __repr__(self) -> str:
        state = "bypassed" if self.bypassed else (
            "lost" if self._lost else ("released" if self._ended else "held")
        )
        kind = type(self).__name__
        return f"<{kind} {self.name} {self.slot_id} {state} until {self.expires_at}>"

    @property
    def expires_at(self) -> datetime | None:
        """When the lease ends unless renewed, in the store's time (last known)."""
        with self._state:
            return self._expires_at

    @property
    def held(self) -> bool:
        """Whether this process believes the slot held (no store read; see ``ensure_held``)."""
        with self._state:
            return not self._ended and self._lost is None

    def _check_usable(self) -> None:
        with self._state:
            if self.bypassed:
                raise SlotLostError(
                    f"{self.name}: this slot was bypassed (on_store_error='fail_open'): "
                    "no slot is held in the store"
                )
            if self._ended:
                raise SlotLostError(f"{self.name}: slot {self.slot_id} was released")
            if self._lost is not None:
                raise SlotLostError(f"{self.name}: slot {self.slot_id} is lost: {self._lost}")

    def _renewed(self, result: Renewed | Gone, at: datetime | None = None) -> datetime:
        if isinstance(result, Gone):
            self._mark_lost(result.reason, at)
            raise SlotLostError(f"{self.name}: slot {self.slot_id} is not held: {result.reason}")
        with self._state:
            self._expires_at = result.expires_at
        return result.expires_at

    def _released(self, result: Released) -> bool:
        with self._state:
            already = self._ended
            self._ended = True
        if already:
            return False
        if result.freed:
            self._telemetry.emit(
                SlotEvent("released", self.name, self.owner, self.slot_id, at=result.at)
            )
        else:
            reason = "its lease had expired" if result.expired else "it was no longer held"
            self._mark_lost(f"released after {reason}", result.at)
        return result.freed

    def _release_failed(self, exc: Exception) -> None:
        """A release the store did not confirm: keep the slot unless failing open."""
        if self._config.on_store_error == "fail_closed":
            raise exc  # the slot is kept: release() may be called again
        logger.warning(
            "releasing slot %s of %s failed; it returns after its lease (fail_open)",
            self.slot_id,
            self.name,
            exc_info=exc,
        )
        with self._state:
            self._ended = True

    def _mark_lost(self, reason: str, at: datetime | None) -> None:
        with self._state:
            if self._lost is not None:
                return
            self._lost = reason
        logger.warning("slot %s of %s lost: %s", self.slot_id, self.name, reason)
        self._telemetry.emit(
            SlotEvent("lost", self.name, self.owner, self.slot_id, reason=reason, at=at)
        )

    def _mark_ended(self) -> None:
        with self._state:
            self._ended = True


class Slot(SlotBase):
    """
    One slot of a :class:`ConcurrencyLimit`, held until released or its lease ends.

    Returned by :meth:`ConcurrencyLimit.slot` / :meth:`ConcurrencyLimit.acquire`;
    do not build it yourself. Thread-safe.
    """

    def __init__(
        self,
        door: Door,
        telemetry: Telemetry,
        *,
        slot_id: str,
        acquired_at: datetime | None,
        expires_at: datetime | None,
        bypassed: bool = False,
    ) -> None:
        super().__init__(
            door.config,
            telemetry,
            slot_id=slot_id,
            acquired_at=acquired_at,
            expires_at=expires_at,
            bypassed=bypassed,
        )
        self._door = door
        self._renewer: _Renewer | None = None

    def renew(self) -> datetime:
        """
        Extend the lease to the store's time plus the limit's ``lease``.

        Returns:
            The new ``expires_at`` (store time).

        Raises:
            SlotLostError: the lease had already ended (another holder may
                have the slot now), the slot was released, or it is bypassed.
            StoreUnavailableError: the store failed; the slot may still be held.
            StoreConflictError: contention outlasted the store's attempts.
        """
        self._check_usable()
        c = self._config
        decide = functools.partial(
            decide_renew, slot_id=self.slot_id, lease=c.lease, name=c.name, limit=c.limit
        )
        with span("limits", "renew", lambda: {**c.attributes(), "limit.slot": self.slot_id}):
            result = self._door.transact(decide)
        return self._renewed(result)

    def ensure_held(self) -> None:
        """
        Check with the store (one read, judged by store time) that the slot is live.

        Raises:
            SlotLostError: it is not (the reason is in the message).
            StoreUnavailableError: the store failed: holding cannot be proven.
        """
        self._check_usable()
        snap = self._door.get()
        self._renewed(check_held(snap, self.slot_id), snap.now)

    def release(self) -> bool:
        """
        Give the slot back. Idempotent; never frees another holder's slot.

        Returns:
            ``True`` when this call freed a live slot; ``False`` when it was
            released before, bypassed, or its lease had already ended (a
            ``lost`` event is emitted then: the limit may have been exceeded
            while this holder overran its lease).

        Raises:
            StoreUnavailableError: the store failed (``on_store_error="fail_closed"``);
                the slot is kept, so ``release()`` may be called again, and
                otherwise returns by itself after its lease.
        """
        self._stop_renewing()
        if not self.held:
            return False
        c = self._config
        decide = functools.partial(
            decide_release, slot_id=self.slot_id, name=c.name, limit=c.limit
        )
        try:
            with span("limits", "release", lambda: {**c.attributes(), "limit.slot": self.slot_id}):
                result = self._door.transact_patiently(decide, _RNG)
        except (StoreUnavailableError, StoreConflictError) as exc:
            self._telemetry.store_error("release")
            self._release_failed(exc)
            return False
        return self._released(result)

    # -- auto-renewal -------------------------------------------------------------------

    def start_renewing(self) -> None:
        """Renew in a daemon thread every third of the lease until released or lost."""
        renewer = _Renewer(self, self._config.lease * RENEW_FRACTION)
        self._renewer = renewer
        renewer.start()

    def _stop_renewing(self) -> None:
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.stop()


class _Renewer:
    """Renews one slot until stopped; :meth:`step` holds the logic, the thread only waits."""

    def __init__(self, slot: Slot, interval: timedelta) -> None:
        self.slot = slot
        self.interval = interval.total_seconds()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"pipeline-reliability-slot-{slot.slot_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread() and self._thread.is_alive():
            self._thread.join()

    def step(self) -> float | None:
        """Renew once; the seconds until the next step, or ``None`` when renewal is over."""
        if self._stop.is_set():
            return None
        try:
            self.slot.renew()
        except SlotLostError:
            return None  # the slot reported the loss (event, log)
        except (StoreUnavailableError, StoreConflictError) as exc:
            logger.warning("renewing slot %s failed: %s; retrying", self.slot.slot_id, exc)
            # Retry sooner than the interval, but not in a tight loop.
            return min(self.interval / 2, 1.0)
        except Exception as exc:  # noqa: BLE001 - the thread must not die quietly
            log_failure(logger, "slot renewal failed unexpectedly", exc, limit=self.slot.name)
            return None
        return self.interval

    def _run(self) -> None:
        delay: float | None = self.interval
        while delay is not None and not self._stop.wait(delay):
            delay = self.step()
