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


# --- the options of the policies of issue 12 (rate windows, slow calls, ...) ---

#: The default size of a count window and the default ``minimum_calls`` of a
#: rate policy (Resilience4j's defaults too).
DEFAULT_WINDOW_CALLS = 100
#: The shortest time window (20 buckets of 50 µs).
MIN_TIME_WINDOW = 0.001
#: Largest ``reset_backoff``: beyond it the first failed probe already reaches any cap.
MAX_BACKOFF = 1000.0
_MODES = ("enforce", "observe")
_WINDOW_TYPES = ("count", "time")


def _rate(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{what} must be a number in (0, 1], got {show(value)}")
    if not 0 < value <= 1:  # NaN fails this too
        raise ConfigurationError(f"{what} must be in (0, 1], got {show(value)}")
    return float(value)


def resolve_window(
    *,
    rate_based: bool,
    window_type: object,
    window_size: object,
    window: float,
    minimum_calls: object,
    failure_threshold: object,
) -> tuple[str, float, object]:
    """
    The window type, size and ``minimum_calls`` a constructor's arguments mean.

    ``window_type``/``window_size`` belong to the rate policies; the failure
    count rule keeps its ``window`` and ``failure_threshold``, as before.

    Raises:
        ConfigurationError: a window option without a rate policy, or a bad size.
    """
    if not rate_based:
        if window_type is not None or window_size is not None:
            raise ConfigurationError(
                "window_type and window_size apply to failure_rate / slow_call_rate; "
                "the failure count rule uses window"
            )
        return "count", DEFAULT_WINDOW_CALLS, (
            failure_threshold if minimum_calls is None else minimum_calls
        )
    kind = "count" if window_type is None else window_type
    if not isinstance(kind, str) or kind not in _WINDOW_TYPES:
        raise ConfigurationError(f"window_type must be one of {_WINDOW_TYPES}, got {show(kind)}")
    size: float
    if kind == "count":
        size = DEFAULT_WINDOW_CALLS if window_size is None else _calls(window_size)
        default_minimum = min(DEFAULT_WINDOW_CALLS, int(size))
    else:
        size = window if window_size is None else duration_seconds(window_size, "window_size")
        default_minimum = DEFAULT_WINDOW_CALLS
    return kind, size, default_minimum if minimum_calls is None else minimum_calls


def _calls(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise ConfigurationError(
            f"window_size of a count window must be an integer in 1..{MAX_COUNT} calls, "
            f"got {show(value)}"
        )
    return value


def check_policy(config: BreakerConfig) -> None:
    """
    Validate the policy options of ``config`` (called by ``BreakerConfig``).

    Raises:
        ConfigurationError: any value that cannot work.
    """
    _rate(config.failure_rate, "failure_rate")
    _rate(config.slow_call_rate, "slow_call_rate")
    if config.slow_call_duration is not None:
        duration_seconds(config.slow_call_duration, "slow_call_duration")
    if config.slow_call_rate is not None:
        if config.slow_call_duration is None:
            raise ConfigurationError("slow_call_rate needs slow_call_duration")
        if config.failure_rate is None:
            raise ConfigurationError(
                "slow_call_rate needs failure_rate (use failure_rate=1.0 to judge slow calls only)"
            )
    kind = cast(object, config.window_type)
    if not isinstance(kind, str) or kind not in _WINDOW_TYPES:
        raise ConfigurationError(f"window_type must be one of {_WINDOW_TYPES}, got {show(kind)}")
    if kind == "count":
        size = _calls(config.window_size)
        if config.rate_based and config.minimum_calls > size:
            raise ConfigurationError(
                f"minimum_calls ({config.minimum_calls}) cannot exceed the count window's "
                f"window_size ({size}): the window could never hold enough calls"
            )
    elif duration_seconds(config.window_size, "window_size") < MIN_TIME_WINDOW:
        # Its buckets must be wider than the clock's resolution (and than zero).
        raise ConfigurationError(
            f"window_size of a time window must be at least {MIN_TIME_WINDOW:g}s, "
            f"got {show(config.window_size)}"
        )
    for option in ("failure_if", "fallback"):
        hook = cast(object, getattr(config, option))
        if hook is not None and not callable(hook):
            raise ConfigurationError(f"{option} must be callable, got {show(hook)}")
    _check_backoff(config)
    mode = cast(object, config.mode)
    if not isinstance(mode, str) or mode not in _MODES:
        raise ConfigurationError(f"mode must be one of {_MODES}, got {show(mode)}")


def _check_backoff(config: BreakerConfig) -> None:
    backoff = cast(object, config.reset_backoff)
    if (
        isinstance(backoff, bool)
        or not isinstance(backoff, int | float)
        or not 1 <= backoff <= MAX_BACKOFF  # NaN fails this too
    ):
        raise ConfigurationError(
            f"reset_backoff must be a number in [1, {MAX_BACKOFF:g}], got {show(backoff)}"
        )
    cap = config.max_reset_timeout
    if cap is not None:
        seconds = duration_seconds(cap, "max_reset_timeout")
        if seconds < config.reset_timeout:
            raise ConfigurationError(
                f"max_reset_timeout ({seconds:g}s) cannot be shorter than "
                f"reset_timeout ({config.reset_timeout:g}s)"
            )
