"""
``PhaseSpec``: what a phase waits for, per date. Its checks (and those of
every input the tracker accepts, in ``_inputs``) run before anything is written.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

from .._keys import validate_id
from .._validate import duration_seconds
from ..errors import ConfigurationError, InvalidInputError
from ._calendar import LocalDeadline, Schedule, recent_dates, zone, zone_name
from ._gates import Gate
from ._inputs import (
    DEFAULT_COUNTS,
    KNOWN_STATUSES,
    MAX_EXPECTED,
    MAX_ID_CHARS,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    RECONCILED,
    encode_metadata,
    normalise_date,
    show,
    validate_completed_at,
    validate_count,
    validate_name,
    validate_text,
)

# The input checks are re-exported: the tracker's modules import them from here.
__all__ = [
    "DEFAULT_COUNTS",
    "KNOWN_STATUSES",
    "MAX_EXPECTED",
    "MAX_ID_CHARS",
    "MAX_METADATA_BYTES",
    "MAX_METADATA_DEPTH",
    "RECONCILED",
    "PhaseSpec",
    "encode_metadata",
    "normalise_date",
    "show",
    "validate_completed_at",
    "validate_count",
    "validate_name",
    "validate_text",
]

_CACHE_DATES = 1024  # dates whose scheduled set one spec remembers


def _schedule_of(expected: object) -> Callable[[date], Iterable[str]] | None:
    """The schedule in ``expected``, or ``None`` when it is a collection of names."""
    if isinstance(expected, str | bytes | Iterable):
        return None
    method = getattr(expected, "expected_for", None)
    if callable(method):
        fn: Callable[[date], Iterable[str]] = method
        return fn
    if callable(expected):
        return expected
    return None


def _gates(gates: object) -> tuple[Gate, ...]:
    if isinstance(gates, str | bytes) or not isinstance(gates, Iterable):
        raise ConfigurationError(f"gates must be a collection of callables, got {show(gates)}")
    found = tuple(gates)
    if not all(callable(g) for g in found):
        raise ConfigurationError("every gate must be callable (date -> bool | GateResult)")
    return found


def _names(values: Iterable[str], what: str, limit: int = MAX_EXPECTED) -> frozenset[str]:
    given: object = values  # checked as given: callers may pass anything
    if isinstance(given, str) or not isinstance(given, Iterable):
        raise ConfigurationError(f"{what} must be a collection of names, got {show(given)}")
    names: set[str] = set()
    for v in values:
        names.add(validate_name(v, what, ConfigurationError))
        if len(names) > limit:
            raise ConfigurationError(f"at most {limit} {what} names are allowed")
    return frozenset(names)


@dataclass(frozen=True, slots=True, init=False)
class PhaseSpec:
    """
    What one phase waits for, per date.

    Args:
        name: The phase (e.g. ``"phase3"``); safe-name charset ``[A-Za-z0-9_-]``.
        expected: The processors whose completion the phase waits for: a
            collection of names (the same every day), or a schedule (a
            callable ``date -> names`` or an object with ``expected_for(date)``,
            see :class:`Schedule`) when the set depends on the calendar. Only
            these count (DESIGN F4). At most ``MAX_EXPECTED`` (50) per date:
            the bound that keeps each date's document under Firestore's 1 MiB.
            The set used for a date is fixed in its document the first time
            it is needed; answers are cached per date.
        collection: The state-store collection of this phase's documents
            (one per date, keyed by the date). Default ``"completion_<name>"``.
        counts_statuses: Statuses that count a processor as done.
        done_empty_statuses: Statuses that also resolve a processor as done,
            with no output (e.g. ``{"no_data"}`` on days without games).
        min_to_trigger: Enables partial triggering: once the deadline has
            passed, trigger when at least this many expected processors are
            done and every ``critical`` one is. ``None``: only a complete set
            triggers. With a schedule it is capped by the date's set.
        critical: Processors a partial trigger cannot do without (with a
            schedule: those of them scheduled that day).
        deadline: How long after the first completion of a date (or, for a
            date where nothing reported, after the end of that local day) the
            date is overdue: the partial rule applies and the sweep reports
            ``deadline_exceeded``. Default 6 hours, unless ``local_deadline``
            is given (then only the local deadline applies, unless
            ``deadline`` is given too: the earlier of the two).
        local_deadline: A :class:`LocalDeadline`: a wall-clock time in
            ``timezone`` relative to the date ("14:00 on date+1").
        timezone: The pipeline's IANA time zone (default ``"UTC"``): when a
            date's day ends, where local deadlines fall, and which dates are
            "today and yesterday" (:meth:`recent_dates`).
        on_nothing_scheduled: A date whose set is empty completes at once
            with reason ``nothing_scheduled``: ``"skip"`` (default) settles it
            without a trigger; ``"trigger"`` triggers the next phase. It never
            raises a deadline alarm.
        gates: Checks that must pass before the trigger is claimed (each
            called with the date; returns ``bool`` or :class:`GateResult`).
        trigger_lease: How long a trigger claim is held before another
            delivery or the sweep may take it over.
        next_phase: The phase a trigger starts (carried in the event).

    Raises:
        ConfigurationError: empty static ``expected``, ``critical`` not a
            subset of it, ``critical`` without ``min_to_trigger``,
            ``min_to_trigger`` outside ``1..len(expected)``, more than
            ``MAX_EXPECTED`` processors, a duration that is not a positive
            ``timedelta`` of at most ``MAX_DURATION`` (about 100 years), an
            unknown time zone, a gate that is not callable, or an unsafe name.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       Schedules, ``timezone``, ``local_deadline``, ``on_nothing_scheduled``, ``gates``.
    """

    name: str
    expected: frozenset[str]
    collection: str
    counts_statuses: frozenset[str]
    done_empty_statuses: frozenset[str]
    min_to_trigger: int | None
    critical: frozenset[str]
    deadline: timedelta
    trigger_lease: timedelta
    next_phase: str | None
    #: The schedule (``None``: ``expected`` is the same every day).
    schedule: Callable[[date], Iterable[str]] | None
    timezone: str
    local_deadline: LocalDeadline | None
    #: Whether the duration rule (``deadline`` after the first completion) applies.
    duration_deadline: bool
    on_nothing_scheduled: str
    gates: tuple[Gate, ...]
    _cache: dict[str, frozenset[str]] = field(compare=False, repr=False)

    def __init__(
        self,
        name: str,
        expected: Iterable[str] | Schedule | Callable[[date], Iterable[str]],
        *,
        collection: str | None = None,
        counts_statuses: Iterable[str] = DEFAULT_COUNTS,
        done_empty_statuses: Iterable[str] = frozenset(),
        min_to_trigger: int | None = None,
        critical: Iterable[str] = frozenset(),
        deadline: timedelta | None = None,
        local_deadline: LocalDeadline | time | None = None,
        timezone: str | ZoneInfo = "UTC",
        on_nothing_scheduled: str = "skip",
        gates: Iterable[Gate] = (),
        trigger_lease: timedelta = timedelta(minutes=5),
        next_phase: str | None = None,
    ) -> None:
        setattr_ = object.__setattr__  # frozen: assign around __setattr__, once
        setattr_(self, "name", validate_name(name, "phase name", ConfigurationError))
        schedule = _schedule_of(expected)
        setattr_(self, "schedule", schedule)
        given: Any = expected
        names = frozenset() if schedule else _names(given, "expected processor")
        setattr_(self, "expected", names)
        setattr_(self, "collection", self._collection(collection))
        setattr_(self, "counts_statuses", _names(counts_statuses, "counts_statuses"))
        setattr_(self, "done_empty_statuses", _names(done_empty_statuses, "done_empty_statuses"))
        setattr_(self, "critical", _names(critical, "critical processor"))
        setattr_(self, "min_to_trigger", min_to_trigger)
        if isinstance(local_deadline, time):
            local_deadline = LocalDeadline(local_deadline)
        if local_deadline is not None and not isinstance(local_deadline, LocalDeadline):
            raise ConfigurationError("local_deadline must be a LocalDeadline or a datetime.time")
        setattr_(self, "local_deadline", local_deadline)
        setattr_(self, "duration_deadline", deadline is not None or local_deadline is None)
        setattr_(self, "deadline", timedelta(hours=6) if deadline is None else deadline)
        setattr_(self, "timezone", zone_name(zone(timezone)))
        setattr_(self, "trigger_lease", trigger_lease)
        if next_phase is not None:
            validate_name(next_phase, "next_phase", ConfigurationError)
        setattr_(self, "next_phase", next_phase)
        mode: object = on_nothing_scheduled  # checked as given: callers may pass anything
        if not isinstance(mode, str) or mode not in {"skip", "trigger"}:
            raise ConfigurationError("on_nothing_scheduled must be 'skip' or 'trigger'")
        setattr_(self, "on_nothing_scheduled", on_nothing_scheduled)
        setattr_(self, "gates", _gates(gates))
        setattr_(self, "_cache", {})
        self._check()

    def _collection(self, collection: str | None) -> str:
        # Not "<name>_completion": that is the legacy orchestrators' collection,
        # whose documents have another layout; sharing it would break both.
        value: object = f"completion_{self.name}" if collection is None else collection
        if not isinstance(value, str):
            raise ConfigurationError(f"collection must be a string, got {show(value)}")
        try:
            return validate_id(value, "collection")
        except InvalidInputError as exc:
            raise ConfigurationError(str(exc)) from exc

    def _check(self) -> None:
        scheduled = self.schedule is not None
        if not self.expected and not scheduled:
            raise ConfigurationError(f"phase {self.name!r}: expected processors must not be empty")
        if not self.counts_statuses:
            raise ConfigurationError(f"phase {self.name!r}: counts_statuses must not be empty")
        if not scheduled and not self.critical <= self.expected:
            unknown = sorted(self.critical - self.expected)
            raise ConfigurationError(f"phase {self.name!r}: critical but not expected: {unknown}")
        minimum: object = self.min_to_trigger  # checked as given: callers may pass anything
        most = MAX_EXPECTED if scheduled else len(self.expected)
        if minimum is None:
            if self.critical:
                raise ConfigurationError(
                    f"phase {self.name!r}: critical only applies with min_to_trigger"
                )
        elif isinstance(minimum, bool) or not (isinstance(minimum, int) and 1 <= minimum <= most):
            raise ConfigurationError(
                f"phase {self.name!r}: min_to_trigger must be within 1..{most}, "
                f"got {show(self.min_to_trigger)}"
            )
        durations: tuple[tuple[str, object], ...] = (
            ("deadline", self.deadline),
            ("trigger_lease", self.trigger_lease),
        )
        for what, value in durations:
            if not isinstance(value, timedelta):
                raise ConfigurationError(f"phase {self.name!r}: {what} must be a timedelta")
            # Positive and at most MAX_DURATION: deadline arithmetic cannot overflow.
            duration_seconds(value, f"phase {self.name!r}: {what}")

    @property
    def zone(self) -> tzinfo:
        """The phase's time zone (``datetime.UTC`` or a ``ZoneInfo``)."""
        return zone(self.timezone)

    def recent_dates(self, now: datetime, days: int = 2) -> tuple[str, ...]:
        """The last ``days`` dates in the phase's time zone at ``now``, newest first."""
        given: object = now  # checked as given: callers may pass anything
        if not isinstance(given, datetime) or given.utcoffset() is None:
            raise InvalidInputError(f"now must be a timezone-aware datetime, got {show(now)}")
        count: object = days
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 366:
            raise InvalidInputError(f"days must be an int within 1..366, got {show(days)}")
        return recent_dates(self.zone, now, days)

    def expected_for(self, day: str | date) -> frozenset[str]:
        """
        The processors the phase expects on ``day`` by its configuration.

        (What the tracker uses is the set fixed in the date's document when
        there is one.) A schedule is asked once per date and cached.

        Raises:
            ConfigurationError: the schedule raised, or answered something
                that is not a collection of at most 50 safe names.
        """
        key = normalise_date(day)
        if self.schedule is None:
            return self.expected
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        try:
            answer = self.schedule(date.fromisoformat(key))
            names = _names(answer, f"scheduled processor of {key}")
        except ConfigurationError:
            raise
        except Exception as exc:
            raise ConfigurationError(
                f"phase {self.name!r}: the schedule failed for {key}: {type(exc).__name__}"
            ) from exc
        if len(self._cache) >= _CACHE_DATES:
            # Oldest first; another thread may evict concurrently: never an error.
            with contextlib.suppress(StopIteration, RuntimeError, KeyError):
                self._cache.pop(next(iter(self._cache)))
        self._cache[key] = names
        return names

    def with_expected(self, expected: frozenset[str]) -> PhaseSpec:
        """This spec as it applies to a date whose expected set is ``expected`` (internal)."""
        if self.schedule is None and expected == self.expected:
            return self
        resolved = copy.copy(self)
        setattr_ = object.__setattr__
        setattr_(resolved, "schedule", None)
        setattr_(resolved, "expected", expected)
        setattr_(resolved, "critical", self.critical & expected)
        if self.min_to_trigger is not None:
            setattr_(resolved, "min_to_trigger", min(self.min_to_trigger, len(expected)) or None)
        return resolved

    @property
    def done_statuses(self) -> frozenset[str]:
        """Statuses that resolve a processor: counting, done-empty, and ``reconciled``."""
        return self.counts_statuses | self.done_empty_statuses | {RECONCILED}

    @property
    def statuses(self) -> frozenset[str]:
        """Every status ``record_completion`` accepts for this phase."""
        return KNOWN_STATUSES | self.done_statuses

    @property
    def partial_enabled(self) -> bool:
        """Whether the deadline partial rule is configured."""
        return self.min_to_trigger is not None
