"""
The shared circuit document and the transition table.

Everything that changes the shared document goes through :func:`transition`,
a pure function of (stored circuit, requested action, store time). The
breaker runs it inside ``store.transact``, so it may be re-run on conflict and
must stay free of side effects.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from .._validate import MAX_DURATION
from ..errors import StoreError
from ._config import BreakerConfig

__all__ = [
    "Action",
    "BreakerState",
    "Change",
    "Circuit",
    "Probe",
    "Report",
    "View",
    "from_document",
    "open_seconds",
    "to_document",
    "transition",
]


_MAX_SECONDS = MAX_DURATION.total_seconds()


class BreakerState(enum.StrEnum):
    """The three states of a circuit; the values are what the store holds."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Action(enum.Enum):
    """What an instance asks of the shared circuit."""

    TRIP = "trip"  # my window saw failure_threshold failures (or: report for the quorum)
    ELECT = "elect"  # the cool-down (or a probe lease) ran out: make me the prober
    PROBE_SUCCEEDED = "probe_succeeded"  # my probes reached success_threshold
    PROBE_FAILED = "probe_failed"  # one of my probes failed
    FORCE_OPEN = "force_open"
    FORCE_CLOSE = "force_close"
    RESET = "reset"


@dataclass(frozen=True, slots=True)
class Probe:
    """The half-open lease: ``holder`` may admit ``slots`` trial calls until ``expires_at``."""

    holder: str
    expires_at: datetime
    slots: int


@dataclass(frozen=True, slots=True)
class Report:
    """One instance's claim, at store time ``at``, that its window tripped (quorum only)."""

    instance: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Circuit:
    """
    The shared document, parsed. A missing document is ``Circuit()``:
    CLOSED at generation 0, and nothing is written to create it.
    """

    state: BreakerState = BreakerState.CLOSED
    generation: int = 0
    opened_at: datetime | None = None
    forced: bool = False
    probe: Probe | None = None
    reports: tuple[Report, ...] = ()
    trip_reports: int = 0
    changed_at: datetime | None = None
    changed_by: str | None = None
    reason: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)
    # How long this opening lasts, in seconds: reset_timeout when it tripped,
    # grown by reset_backoff on each failed probe (None: never written, reset_timeout).
    open_for: float | None = None


def open_seconds(circuit: Circuit, config: BreakerConfig) -> float:
    """How long the circuit's current opening lasts (its cool-down), in seconds."""
    return config.reset_timeout if circuit.open_for is None else circuit.open_for


def _grown(circuit: Circuit, config: BreakerConfig) -> float:
    """The cool-down after one more failed probe: times ``reset_backoff``, capped."""
    cap = config.max_reset_timeout
    grown = open_seconds(circuit, config) * config.reset_backoff
    return min(grown, _MAX_SECONDS if cap is None else cap)


@dataclass(frozen=True, slots=True)
class Change:
    """
    A write decided by :func:`transition`.

    ``is_transition`` is False only for a quorum trip report, the one write
    that does not change the state (and leaves the generation alone).
    """

    before: Circuit
    after: Circuit
    reason: str

    @property
    def is_transition(self) -> bool:
        """Whether the generation moved (every write except a trip report)."""
        return self.after.generation != self.before.generation


# One function holds the whole table, one return per edge, so that it reads as the table.
def transition(  # noqa: PLR0911, PLR0912
    current: Circuit,
    action: Action,
    *,
    expected: int | None,
    now: datetime,
    me: str,
    config: BreakerConfig,
    probes_running: bool = False,
    trip_reason: str = "failure_threshold",
) -> Change | None:
    """
    The transition table: what ``action`` does to ``current`` at store time ``now``.

    ``probes_running`` (probe verdicts only): other probes of the holder are
    still running. A failure then keeps their lease on the OPEN circuit, and
    no probe is elected before it expires: however long probes run, at most
    ``half_open_probes`` run within their lease, fleet-wide.

    ``expected`` is the generation the caller's decision was based on; when
    the stored generation moved, automatic actions write nothing (the caller
    adopts the stored circuit instead). Forced actions pass ``None``: the
    operator wins over whatever is stored. Returns ``None`` for "no write".
    """
    if expected is not None and current.generation != expected:
        return None
    state = current.state
    if action is Action.TRIP:
        if state is not BreakerState.CLOSED:
            return None
        return _trip(current, now, me, config, trip_reason)
    probe = current.probe
    if action is Action.ELECT:
        if state is BreakerState.OPEN and not current.forced:
            assert current.opened_at is not None
            if now - current.opened_at >= timedelta(seconds=open_seconds(current, config)) and (
                probe is None or now >= probe.expires_at
            ):
                return _elect(current, now, me, config, "reset_timeout_elapsed")
        if (
            state is BreakerState.HALF_OPEN
            and probe is not None
            and now >= probe.expires_at + timedelta(seconds=open_seconds(current, config))
        ):
            # A probe that outlived its lease counts as failed, and a failed probe
            # is followed by a cool-down: only then may another instance probe.
            return _elect(current, now, me, config, "probe_lease_expired",
                          open_for=_grown(current, config))
        return None
    if action in (Action.PROBE_SUCCEEDED, Action.PROBE_FAILED):
        if state is not BreakerState.HALF_OPEN or probe is None or probe.holder != me:
            return None
        if action is Action.PROBE_SUCCEEDED and now < probe.expires_at:
            return _move(current, BreakerState.CLOSED, now, me, "probe_succeeded")
        # A failure, or a success too late by the store's clock (past probe_timeout).
        reason = "probe_failed" if action is Action.PROBE_FAILED else "probe_timeout"
        keep = probe if probes_running and now < probe.expires_at else None
        return _move(current, BreakerState.OPEN, now, me, reason, opened_at=now, probe=keep,
                     open_for=_grown(current, config))
    if action is Action.FORCE_OPEN:
        if state is BreakerState.OPEN and current.forced:
            return None
        return _move(
            current, BreakerState.OPEN, now, me, "forced_open", opened_at=now, forced=True
        )
    if action is Action.FORCE_CLOSE:
        if state is BreakerState.CLOSED:
            return None
        return _move(current, BreakerState.CLOSED, now, me, "forced_close")
    # Action.RESET: like force_close, and also forgets pending trip reports.
    if state is BreakerState.CLOSED and not current.reports:
        return None
    return _move(current, BreakerState.CLOSED, now, me, "reset")


def _trip(
    current: Circuit, now: datetime, me: str, config: BreakerConfig, reason: str
) -> Change | None:
    # Every opening starts from reset_timeout: growth is per run of failed probes.
    first = config.reset_timeout
    if config.open_quorum == 1:
        return _move(current, BreakerState.OPEN, now, me, reason, opened_at=now, open_for=first)
    window = timedelta(seconds=config.window)
    live = [r for r in current.reports if now - r.at < window]
    if any(r.instance == me for r in live):
        return None  # my report still counts: writing it again would change nothing
    others = {r.instance for r in live}
    if len(others) + 1 >= config.open_quorum:
        return _move(current, BreakerState.OPEN, now, me, "open_quorum", opened_at=now,
                     open_for=first)
    # A trip report: the only write that is not a transition (generation unchanged).
    after = replace(
        current,
        reports=(*live, Report(me, now)),
        trip_reports=current.trip_reports + 1,
        changed_at=now,
        changed_by=me,
        reason="trip_report",
    )
    return Change(current, after, "trip_report")


def _elect(
    current: Circuit, now: datetime, me: str, config: BreakerConfig, reason: str,
    *, open_for: float | None = None,
) -> Change:
    # The lease lasts one probe_timeout: a probe still running after it counts as
    # failed. A prober silent for that long plus a cool-down is presumed dead, and
    # the next caller anywhere in the fleet takes over.
    probe = Probe(me, now + timedelta(seconds=config.probe_timeout), config.half_open_probes)
    return _move(current, BreakerState.HALF_OPEN, now, me, reason, probe=probe,
                 opened_at=current.opened_at,
                 open_for=current.open_for if open_for is None else open_for)


def _move(
    current: Circuit,
    state: BreakerState,
    now: datetime,
    me: str,
    reason: str,
    *,
    opened_at: datetime | None = None,
    forced: bool = False,
    probe: Probe | None = None,
    open_for: float | None = None,
) -> Change:
    after = Circuit(
        state=state,
        generation=current.generation + 1,
        opened_at=opened_at,
        forced=forced,
        probe=probe,
        reports=(),
        trip_reports=current.trip_reports,
        changed_at=now,
        changed_by=me,
        reason=reason,
        extra=current.extra,
        open_for=open_for,
    )
    return Change(current, after, reason)


@dataclass(frozen=True, slots=True)
class View:
    """
    This instance's cached copy of the circuit, and when (store and local time) it was read.

    ``due`` is the local monotonic time at which an election becomes due (the
    cool-down ends, or the probe lease plus a cool-down, by the store's clock as read, carried
    forward by the local monotonic clock); ``inf`` when none can be.
    """

    circuit: Circuit
    store_now: datetime
    read_mono: float
    due: float = math.inf

    @classmethod
    def of(cls, circuit: Circuit, store_now: datetime, mono: float, config: BreakerConfig) -> View:
        """The view of ``circuit`` read at store time ``store_now``, local time ``mono``."""
        deadline = None
        opened_at = circuit.opened_at
        if circuit.state is BreakerState.OPEN and not circuit.forced and opened_at is not None:
            deadline = opened_at + timedelta(seconds=open_seconds(circuit, config))
            if circuit.probe is not None:  # probes of the last lease still running
                deadline = max(deadline, circuit.probe.expires_at)
        elif circuit.state is BreakerState.HALF_OPEN and circuit.probe is not None:
            deadline = circuit.probe.expires_at + timedelta(seconds=open_seconds(circuit, config))
        if deadline is None:
            return cls(circuit, store_now, mono)
        return cls(circuit, store_now, mono, mono + (deadline - store_now).total_seconds())


def to_document(circuit: Circuit, name: str) -> dict[str, Any]:
    """The document stored for ``circuit`` (``name`` is kept for people and tools)."""
    probe = circuit.probe
    return {
        **circuit.extra,
        "name": name,
        "state": circuit.state.value,
        "generation": circuit.generation,
        "opened_at": circuit.opened_at,
        "forced": circuit.forced,
        "probe": None
        if probe is None
        else {"holder": probe.holder, "expires_at": probe.expires_at, "slots": probe.slots},
        "reports": [{"instance": r.instance, "at": r.at} for r in circuit.reports],
        "trip_reports": circuit.trip_reports,
        "changed_at": circuit.changed_at,
        "changed_by": circuit.changed_by,
        "reason": circuit.reason,
        "open_for": circuit.open_for,
    }


_KNOWN = frozenset(to_document(Circuit(), "").keys())


def from_document(data: Mapping[str, Any] | None) -> Circuit:
    """
    Parse a stored document (``None``: the circuit was never written: CLOSED, generation 0).

    Raises:
        StoreError: the document is not a circuit this library wrote.
    """
    if data is None:
        return Circuit()
    try:
        circuit = _parse(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"malformed circuit breaker document: {exc!r}") from exc
    if circuit.state is BreakerState.OPEN and circuit.opened_at is None:
        raise StoreError("malformed circuit breaker document: open without opened_at")
    if circuit.state is BreakerState.HALF_OPEN and circuit.probe is None:
        raise StoreError("malformed circuit breaker document: half-open without a probe lease")
    return circuit


def _parse(data: Mapping[str, Any]) -> Circuit:
    raw_probe = data.get("probe")
    probe = None
    if raw_probe is not None:
        probe = Probe(
            str(raw_probe["holder"]), _when(raw_probe["expires_at"]), int(raw_probe["slots"])
        )
    opened_at = data.get("opened_at")
    changed_at = data.get("changed_at")
    return Circuit(
        state=BreakerState(data["state"]),
        generation=_generation(data["generation"]),
        opened_at=None if opened_at is None else _when(opened_at),
        forced=bool(data.get("forced", False)),
        probe=probe,
        reports=tuple(
            Report(str(r["instance"]), _when(r["at"])) for r in data.get("reports") or ()
        ),
        trip_reports=int(data.get("trip_reports", 0)),
        changed_at=None if changed_at is None else _when(changed_at),
        changed_by=data.get("changed_by"),
        reason=data.get("reason"),
        extra={k: v for k, v in data.items() if k not in _KNOWN},
        open_for=_open_for(data.get("open_for")),
    )


def _open_for(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"open_for {value!r}")
    if not 0 < value <= _MAX_SECONDS:  # NaN fails this too
        raise ValueError(f"open_for {value!r}")
    return float(value)


def _generation(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"generation {value!r}")
    return value


def _when(value: Any) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise TypeError(f"expected a tz-aware datetime, got {value!r}")
    return value
