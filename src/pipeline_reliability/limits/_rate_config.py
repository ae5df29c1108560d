"""The adaptive rate limiter's options, validated once by both constructors."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .._keys import encode_key, validate_id
from .._validate import MAX_DURATION, describe, duration_seconds
from ..errors import ConfigurationError, InvalidInputError
from ..retry._predicates import is_throttling
from ._aimd import MAX_RATE, MIN_RATE, AimdConfig

__all__ = ["MAX_MEMBERS", "RateConfig", "build_config", "wait_limit"]

#: Instances one shared budget can hold (each is a short entry in one document).
MAX_MEMBERS = 1000
_MAX_INSTANCE_BYTES = 256
_MAX_NAME_BYTES = 1024
_MAX_BURST = 1_000_000


@dataclass(frozen=True, slots=True)
class RateConfig:
    """Everything a limiter was built with (durations in seconds, rates in calls/second)."""

    name: str
    key: str
    aimd: AimdConfig
    rate: float
    burst: float
    throttled: Callable[[BaseException], bool]
    throttled_result: Callable[[Any], bool] | None
    share: float
    store_timeout: float
    instance_id: str
    collection: str

    @property
    def lease(self) -> float:
        """How long a member counts without a heartbeat: three ``share`` periods."""
        return 3 * self.share


def _rate(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{what} must be calls per second, got {describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise ConfigurationError(f"{what} is not a representable rate") from None
    if not (math.isfinite(number) and MIN_RATE <= number <= MAX_RATE):
        raise ConfigurationError(
            f"{what} must be in [{MIN_RATE:g}, {MAX_RATE:g}] calls/s, got {value!r}"
        )
    return number


def _text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{what} must be a non-empty string, got {describe(value)}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ConfigurationError(f"{what} must be valid UTF-8, got {describe(value)}") from None
    if size > limit:
        raise ConfigurationError(f"{what} must be at most {limit} bytes of UTF-8")
    return value


def build_config(
    name: object,
    *,
    rate: object,
    min_rate: object,
    max_rate: object,
    increase: object,
    decrease: object,
    cooldown: object,
    burst: object,
    throttled: object,
    throttled_result: object,
    share: object,
    store_timeout: object,
    instance_id: str,
    collection: object,
) -> RateConfig:
    """
    Check every option and fill the relative defaults.

    Raises:
        ConfigurationError: any option that cannot work.
    """
    text = _text(name, "a rate limiter name", _MAX_NAME_BYTES)
    try:
        key = validate_id(encode_key(text))
        validate_id(collection, "collection id")
    except InvalidInputError as exc:
        raise ConfigurationError(str(exc)) from None
    _text(instance_id, "instance_id", _MAX_INSTANCE_BYTES)
    start = _rate(rate, "rate")
    top = start if max_rate is None else _rate(max_rate, "max_rate")
    floor = max(start / 100, MIN_RATE) if min_rate is None else _rate(min_rate, "min_rate")
    if not floor <= start <= top:
        raise ConfigurationError(
            f"rates must satisfy min_rate <= rate <= max_rate, got {floor} <= {start} <= {top}"
        )
    step = top / 20 if increase is None else _rate(increase, "increase")
    if isinstance(decrease, bool) or not isinstance(decrease, int | float) or not (
        0 < decrease < 1
    ):
        raise ConfigurationError(f"decrease must be a factor in (0, 1), got {describe(decrease)}")
    if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= _MAX_BURST:
        raise ConfigurationError(
            f"burst must be an integer in 1..{_MAX_BURST}, got {describe(burst)}"
        )
    if not callable(throttled):
        raise ConfigurationError(f"throttled must be callable, got {describe(throttled)}")
    if throttled_result is not None and not callable(throttled_result):
        raise ConfigurationError(
            f"throttled_result must be callable or None, got {describe(throttled_result)}"
        )
    return RateConfig(
        name=text,
        key=key,
        aimd=AimdConfig(
            min_rate=floor,
            max_rate=top,
            increase=step,
            decrease=float(decrease),
            cooldown=duration_seconds(cooldown, "cooldown"),
        ),
        rate=start,
        burst=float(burst),
        throttled=throttled,
        throttled_result=throttled_result,
        share=duration_seconds(share, "share"),
        store_timeout=duration_seconds(store_timeout, "store_timeout"),
        instance_id=instance_id,
        collection=str(collection),
    )


def wait_limit(timeout: object) -> float:
    """
    Check an ``acquire(timeout=...)`` argument: seconds or a ``timedelta``.

    ``None`` means "as long as the next slot takes", which is always finite;
    a wait beyond ``MAX_DURATION`` (only a queue of millions of waiters at a
    tiny rate could need one) times out like any other.

    Raises:
        InvalidInputError: not a non-negative, finite duration of at most about 100 years.
    """
    if timeout is None:
        return _FOREVER
    try:
        return duration_seconds(timeout, "timeout", allow_zero=True)
    except ConfigurationError as exc:
        raise InvalidInputError(str(exc)) from None


_FOREVER = MAX_DURATION.total_seconds()
DEFAULT_THROTTLED = is_throttling
DEFAULT_COOLDOWN = timedelta(seconds=1)
DEFAULT_SHARE = timedelta(seconds=15)
DEFAULT_STORE_TIMEOUT = timedelta(milliseconds=250)
