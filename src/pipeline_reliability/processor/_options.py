"""What a ProcessorRun is built from: ids inherited from a trigger, the lock, checks."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from .._clock import Clock
from .._validate import duration_seconds
from ..completion import TriggerEvent
from ..errors import ConfigurationError, InvalidInputError
from ..lock import DateLock
from ..pubsub import CompletionMessage

__all__ = [
    "RUN_STATUSES",
    "Trigger",
    "build_lock",
    "check_metadata",
    "check_record_count",
    "check_status",
    "check_text",
    "inherit_ids",
    "lock_wait",
    "trigger_date",
]

Trigger = CompletionMessage | TriggerEvent
"""What can start a run: the upstream processor's completion, or a trigger event."""

RUN_STATUSES = frozenset({"success", "no_data", "partial"})
"""The statuses the body of a run may set (``failed`` is set by the run itself)."""

_MAX_ID = 500


def check_text(value: object, what: str) -> str:
    """Return ``value`` if it is a non-empty string of reasonable length."""
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_ID:
        raise InvalidInputError(
            f"{what} must be a non-empty string of at most {_MAX_ID} characters, got {value!r:.80}"
        )
    return value.strip()


def check_status(value: object) -> str:
    """Return ``value`` if it is a status the body may set."""
    if value not in RUN_STATUSES:
        raise InvalidInputError(f"run.status must be one of {sorted(RUN_STATUSES)}, got {value!r}")
    assert isinstance(value, str)
    return value


def check_record_count(value: object) -> int | None:
    """Return ``value`` if it is ``None`` or an int >= 0."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise InvalidInputError(f"run.record_count must be an int >= 0 or None, got {value!r}")
    return value


def check_metadata(value: object) -> dict[str, Any]:
    """Return ``value`` as a dict if it is a mapping with string keys."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidInputError(f"run.metadata must map strings to values, got {value!r:.80}")
    return dict(value)


def inherit_ids(
    trigger: Trigger | None, execution_id: str | None, correlation_id: str | None
) -> tuple[str, str]:
    """
    The run's (execution id, correlation id).

    A new execution id unless one is given. The correlation id is the one
    given, else the trigger's (so one id follows a date from phase to phase),
    else the execution id (as the production publishers do).
    """
    if trigger is not None and not isinstance(trigger, CompletionMessage | TriggerEvent):
        raise InvalidInputError(
            f"trigger must be a CompletionMessage or a TriggerEvent, got {type(trigger).__name__}"
        )
    run_id = uuid.uuid4().hex if execution_id is None else check_text(execution_id, "execution_id")
    if correlation_id is not None:
        return run_id, check_text(correlation_id, "correlation_id")
    if isinstance(trigger, CompletionMessage):
        return run_id, trigger.correlation_id
    if isinstance(trigger, TriggerEvent):
        return run_id, trigger.correlation_id or trigger.trigger_id
    return run_id, run_id


def trigger_date(trigger: Trigger) -> str:
    """The date a trigger is about."""
    if isinstance(trigger, CompletionMessage):
        return trigger.game_date
    if isinstance(trigger, TriggerEvent):
        return trigger.date
    raise InvalidInputError(
        f"expected a date, a CompletionMessage or a TriggerEvent, got {type(trigger).__name__}"
    )


def build_lock(
    lock: DateLock | Mapping[str, Any] | None,
    processor: str,
    date: str,
    owner: str,
    clock: Clock,
) -> DateLock | None:
    """
    The run's DateLock: the one given, or one built from options.

    Options are :class:`DateLock`'s keyword arguments plus ``store``
    (required) and ``name`` (default: the processor). ``owner`` and
    ``clock`` default to the run's; ``auto_renew`` defaults to True, so a
    long run keeps its lease and learns at once when it loses it.
    """
    if lock is None:
        return None
    if isinstance(lock, DateLock):
        if lock.date != date:
            raise ConfigurationError(f"the lock is for {lock.date}, the run for {date}")
        return lock
    if not isinstance(lock, Mapping):
        raise ConfigurationError(
            f"lock must be a DateLock or a mapping of DateLock options, got {type(lock).__name__}"
        )
    options = dict(lock)
    if "store" not in options:
        raise ConfigurationError("lock options need a 'store'")
    store = options.pop("store")
    name = options.pop("name", processor)
    options.setdefault("owner", owner)
    options.setdefault("clock", clock)
    options.setdefault("auto_renew", True)
    try:
        return DateLock(store, name, date, **options)
    except TypeError as exc:  # an option DateLock does not have
        raise ConfigurationError(f"invalid lock options: {exc}") from exc


def lock_wait(timeout: float | dt.timedelta | None) -> tuple[bool, float | None]:
    """
    ``acquire`` arguments for ``lock_timeout``: ``None`` means do not wait.

    Raises:
        ConfigurationError: not a duration, negative, or too long.
    """
    if timeout is None:
        return False, None
    return True, duration_seconds(timeout, "lock_timeout", allow_zero=True)
