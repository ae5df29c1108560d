"""What the sync and async rate limiters share: options, state, feedback, listeners."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from .._clock import Clock
from .._identity import default_owner
from .._validate import describe
from ..errors import ConfigurationError, InvalidInputError
from ._rate_config import RateConfig, build_config, wait_limit
from ._rate_core import RateCore
from ._rate_events import RateLimiterListener

__all__ = ["LimiterBase"]

logger = logging.getLogger("pipeline_reliability.limits")


class LimiterBase:
    """What the sync and async limiters share: options, state, feedback, listeners."""

    def __init__(
        self,
        name: str,
        *,
        rate: float,
        min_rate: float | None,
        max_rate: float | None,
        increase: float | None,
        decrease: float,
        cooldown: timedelta | float,
        burst: int,
        throttled: Callable[[BaseException], bool],
        throttled_result: Callable[[Any], bool] | None,
        store: object,
        share: timedelta | float,
        store_timeout: timedelta | float,
        timeout: timedelta | float | None,
        clock: Clock | None,
        instance_id: str | None,
        collection: str,
    ) -> None:
        if clock is not None and not (
            callable(getattr(clock, "monotonic", None)) and callable(getattr(clock, "sleep", None))
        ):
            raise ConfigurationError(
                f"clock must have monotonic() and sleep(), got {describe(clock)}"
            )
        self._config: RateConfig = build_config(
            name, rate=rate, min_rate=min_rate, max_rate=max_rate, increase=increase,
            decrease=decrease, cooldown=cooldown, burst=burst, throttled=throttled,
            throttled_result=throttled_result, share=share, store_timeout=store_timeout,
            instance_id=default_owner() if instance_id is None else instance_id,
            collection=collection,
        )
        try:
            self._timeout = wait_limit(timeout)
        except InvalidInputError as exc:
            raise ConfigurationError(str(exc)) from None
        self._core = RateCore(self._config, clock, shared=store is not None)

    @property
    def name(self) -> str:
        """The limiter's name."""
        return self._config.name

    @property
    def instance_id(self) -> str:
        """This instance's id in the shared budget."""
        return self._config.instance_id

    @property
    def rate(self) -> float:
        """Calls per second this instance admits now (its share of the fleet rate when shared)."""
        return self._core.rate

    @property
    def fleet_rate(self) -> float:
        """The AIMD rate: the whole fleet's when shared, else equal to :attr:`rate`."""
        return self._core.fleet_rate

    @property
    def members(self) -> int:
        """Live instances sharing the budget as of the last heartbeat (1 without a store)."""
        return self._core.members

    def throttled(self) -> None:
        """
        Report a throttling signal (a 429) for a call you classified yourself.

        Decreases the rate multiplicatively, at most once per ``cooldown``.
        """
        self._core.throttle()

    def succeeded(self) -> None:
        """Report a successful call you classified yourself (additive increase when due)."""
        self._core.success()

    def add_listener(self, listener: RateLimiterListener) -> None:
        """
        Call ``listener(event)`` on rate changes and shared-budget store errors.

        Raises:
            InvalidInputError: ``listener`` is not callable.
        """
        if not callable(listener):
            raise InvalidInputError(f"a listener must be callable, got {describe(listener)}")
        self._core.listeners = (*self._core.listeners, listener)

    def remove_listener(self, listener: RateLimiterListener) -> None:
        """Stop calling ``listener`` (no error if it was not added)."""
        self._core.listeners = tuple(x for x in self._core.listeners if x is not listener)

    def _limit(self, timeout: object) -> float:
        return self._timeout if timeout is None else wait_limit(timeout)

    def _is_throttle(self, exc: BaseException) -> bool:
        try:
            return bool(self._config.throttled(exc))
        except Exception:
            # A broken classifier must not replace the caller's own exception.
            logger.exception("rate limiter %r: throttled predicate failed", self.name)
            return False

    def _outcome(self, result: object, sent_at: float) -> None:
        check = self._config.throttled_result
        if check is not None:
            try:
                hit = bool(check(result))
            except Exception:
                logger.exception("rate limiter %r: throttled_result predicate failed", self.name)
                hit = False
            if hit:
                self._core.throttle(sent_at)
                return
        self._core.success()

    def _failure(self, exc: BaseException, sent_at: float) -> None:
        if isinstance(exc, Exception) and self._is_throttle(exc):
            self._core.throttle(sent_at)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, rate={self.rate:.6g}, "
            f"fleet_rate={self.fleet_rate:.6g}, members={self.members})"
        )
