"""The breaker's options, validated once when the breaker is built."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, cast

from .._keys import validate_id
from .._validate import duration_seconds
from ..errors import ConfigurationError

__all__ = ["BreakerConfig", "Mode", "OnStoreError", "WindowType", "seconds", "show"]

OnStoreError = Literal["fail_open", "fail_closed"]
_ON_STORE_ERROR = ("fail_open", "fail_closed")
Mode = Literal["enforce", "observe"]
WindowType = Literal["count", "time"]


def seconds(value: timedelta | float, what: str, *, allow_zero: bool = False) -> float:
    """Normalise a duration given as ``timedelta`` or float seconds, rejecting nonsense."""
    return duration_seconds(value, what, allow_zero=allow_zero)


# Counts are kept in memory per instance (the window holds failure_threshold
# and minimum_calls timestamps); a million is far beyond any real use.
MAX_COUNT = 1_000_000
MAX_QUORUM = 100


def show(value: object) -> str:
    """``repr(value)`` cut to 100 characters, for error messages about hostile values."""
    try:
        return repr(value)[:100]
    except Exception:  # noqa: BLE001  (huge ints, broken __repr__: say what it is)
        return f"<{type(value).__name__}>"


def _positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise ConfigurationError(f"{what} must be an integer in 1..{MAX_COUNT}, got {show(value)}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerConfig:
    """
    Everything a :class:`CircuitBreaker` was configured with (durations in seconds).

    Built and validated by the breaker's constructor; read it back from
    ``breaker.config``. See :class:`CircuitBreaker` for what each option means.

    The policy options (``failure_rate``, ``window_type``, ``window_size``,
    ``slow_call_duration``, ``slow_call_rate``, ``failure_if``, ``reset_backoff``,
    ``max_reset_timeout``, ``mode``, ``fallback``) are validated here too.

    Raises:
        ConfigurationError: a value that cannot work (zero thresholds,
            ``success_threshold > half_open_probes``, an unknown
            ``on_store_error``, a non-exception in ``excluded``, ...).
    """

    failure_threshold: int = 5
    window: float = 60.0
    minimum_calls: int = 5
    reset_timeout: float = 60.0
    half_open_probes: int = 1
    success_threshold: int = 1
    excluded: tuple[type[BaseException], ...] = ()
    failure_predicate: Callable[[BaseException], bool] | None = None
    cache_ttl: float = 5.0
    store_timeout: float = 0.25
    probe_timeout: float = 60.0
    on_store_error: OnStoreError = "fail_open"
    open_quorum: int = 1
    collection: str = "circuit_breakers"
    failure_rate: float | None = None
    slow_call_duration: float | None = None
    slow_call_rate: float | None = None
    window_type: WindowType = "count"
    window_size: float = 100
    failure_if: Callable[[Any], bool] | None = None
    reset_backoff: float = 1.0
    max_reset_timeout: float | None = None
    mode: Mode = "enforce"
    fallback: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        _positive_int(self.failure_threshold, "failure_threshold")
        _positive_int(self.minimum_calls, "minimum_calls")
        _positive_int(self.half_open_probes, "half_open_probes")
        _positive_int(self.success_threshold, "success_threshold")
        _positive_int(self.open_quorum, "open_quorum")
        if self.open_quorum > MAX_QUORUM:
            # Each pending report is stored in the circuit document.
            raise ConfigurationError(f"open_quorum must be at most {MAX_QUORUM}")
        seconds(self.window, "window")
        seconds(self.reset_timeout, "reset_timeout")
        seconds(self.cache_ttl, "cache_ttl", allow_zero=True)
        seconds(self.store_timeout, "store_timeout")
        seconds(self.probe_timeout, "probe_timeout")
        if self.success_threshold > self.half_open_probes:
            # Each half-open generation admits at most half_open_probes trial calls, so a
            # larger success threshold could never be reached.
            raise ConfigurationError(
                f"success_threshold ({self.success_threshold}) cannot exceed "
                f"half_open_probes ({self.half_open_probes})"
            )
        policy = cast(object, self.on_store_error)
        if not isinstance(policy, str) or policy not in _ON_STORE_ERROR:
            raise ConfigurationError(
                f"on_store_error must be one of {_ON_STORE_ERROR}, got {show(self.on_store_error)}"
            )
        for kind in cast(tuple[object, ...], self.excluded):
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise ConfigurationError(f"excluded must hold exception types, got {show(kind)}")
        predicate = cast(object, self.failure_predicate)
        if predicate is not None and not callable(predicate):
            raise ConfigurationError("failure_predicate must be callable")
        try:
            validate_id(self.collection, "collection id")
        except (ValueError, UnicodeError) as exc:
            raise ConfigurationError(str(exc)) from exc
        # Imported here: _policy imports this module for the type.
        from ._policy import check_policy

        check_policy(self)

    @property
    def rate_based(self) -> bool:
        """Whether a failure or slow-call rate (not the failure count) decides the trip."""
        return self.failure_rate is not None or self.slow_call_rate is not None

    @property
    def records_successes(self) -> bool:
        """
        Whether a successful call must be looked at after it returns.

        Under the failure count rule only ``minimum_calls`` looks at successes,
        and when it is at most the failure threshold, enough failures already
        imply enough calls: the healthy hot path then records nothing at all.
        The rate policies count every call; slow calls and ``failure_if`` judge it.
        """
        return (
            self.minimum_calls > self.failure_threshold
            or self.rate_based
            or self.slow_call_duration is not None
            or self.failure_if is not None
        )
