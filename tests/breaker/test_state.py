"""The transition table and the circuit document, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline_reliability import StoreError
from pipeline_reliability.breaker import BreakerConfig, BreakerState
from pipeline_reliability.breaker._state import (
    Action,
    Circuit,
    Probe,
    Report,
    from_document,
    to_document,
    transition,
)

T0 = datetime(2026, 1, 31, 12, tzinfo=UTC)
CONFIG = BreakerConfig(reset_timeout=60.0, window=60.0, half_open_probes=2, success_threshold=1)
OPEN = Circuit(BreakerState.OPEN, 4, opened_at=T0)
HALF = Circuit(BreakerState.HALF_OPEN, 5, opened_at=T0,
               probe=Probe("me", T0 + timedelta(seconds=120), 2))


def _go(current: Circuit, action: Action, *, at: float = 0, expected: int | None = -1,
        config: BreakerConfig = CONFIG, me: str = "me") -> Any:
    gen = current.generation if expected == -1 else expected
    change = transition(current, action, expected=gen, now=T0 + timedelta(seconds=at),
                        me=me, config=config)
    return None if change is None else (change.after.state, change.after.generation,
                                        change.reason)


def test_trip_opens_a_closed_circuit() -> None:
    """TRIP on CLOSED at the expected generation opens it at the next generation."""
    assert _go(Circuit(), Action.TRIP) == (BreakerState.OPEN, 1, "failure_threshold")


def test_a_moved_generation_writes_nothing() -> None:
    """Every automatic action is a compare-and-set: a stale generation decides nothing."""
    for action in (Action.TRIP, Action.ELECT, Action.PROBE_SUCCEEDED, Action.PROBE_FAILED):
        assert _go(HALF, action, at=1000, expected=HALF.generation - 1) is None


def test_election_waits_for_reset_timeout_by_store_time() -> None:
    """OPEN elects a prober only once reset_timeout has passed since opened_at."""
    assert _go(OPEN, Action.ELECT, at=59.9) is None
    assert _go(OPEN, Action.ELECT, at=60) == (
        BreakerState.HALF_OPEN, 5, "reset_timeout_elapsed"
    )


def test_election_writes_a_lease_with_all_probe_slots() -> None:
    """The elected instance holds a lease of probe_timeout with half_open_probes slots."""
    change = transition(OPEN, Action.ELECT, expected=4, now=T0 + timedelta(seconds=60),
                        me="b", config=CONFIG)

    assert change is not None
    assert change.after.probe == Probe("b", T0 + timedelta(seconds=120), 2)
    assert change.after.opened_at == T0


def test_forced_open_never_elects() -> None:
    """A forced-open circuit ignores reset_timeout."""
    forced = Circuit(BreakerState.OPEN, 2, opened_at=T0, forced=True)

    assert _go(forced, Action.ELECT, at=10**6) is None


def test_half_open_lease_takeover_only_after_expiry_and_a_cool_down() -> None:
    """
    Another instance takes the probe over only when the lease (probe_timeout)
    has expired and one reset_timeout more has passed: a probe past its timeout
    counts as failed, and a failed probe is followed by a cool-down.
    """
    assert _go(HALF, Action.ELECT, at=120, me="other") is None
    assert _go(HALF, Action.ELECT, at=179.9, me="other") is None
    assert _go(HALF, Action.ELECT, at=180, me="other") == (
        BreakerState.HALF_OPEN, 6, "probe_lease_expired"
    )


def test_item6_a_probe_success_after_its_lease_counts_as_failed() -> None:
    """A probe verdict of success at or after the lease's expiry (store time) reopens."""
    assert _go(HALF, Action.PROBE_SUCCEEDED, at=119.9) == (
        BreakerState.CLOSED, 6, "probe_succeeded"
    )
    assert _go(HALF, Action.PROBE_SUCCEEDED, at=120) == (BreakerState.OPEN, 6, "probe_timeout")


def test_the_lease_lasts_probe_timeout_not_reset_timeout() -> None:
    """The election writes a lease of probe_timeout, whatever reset_timeout is."""
    config = BreakerConfig(reset_timeout=2.0, probe_timeout=10.0)
    change = transition(OPEN, Action.ELECT, expected=4, now=T0 + timedelta(seconds=2),
                        me="b", config=config)
    assert change is not None
    assert change.after.probe is not None
    assert change.after.probe.expires_at == T0 + timedelta(seconds=12)


def test_only_the_holder_reports_a_probe_verdict() -> None:
    """Probe verdicts from anyone but the lease holder are ignored."""
    assert _go(HALF, Action.PROBE_SUCCEEDED, me="other") is None
    assert _go(HALF, Action.PROBE_SUCCEEDED) == (BreakerState.CLOSED, 6, "probe_succeeded")
    assert _go(HALF, Action.PROBE_FAILED) == (BreakerState.OPEN, 6, "probe_failed")


def test_forced_actions_ignore_the_expected_generation() -> None:
    """Operator actions win over whatever is stored, and write only when something changes."""
    assert _go(HALF, Action.FORCE_OPEN, expected=None) == (BreakerState.OPEN, 6, "forced_open")
    assert _go(OPEN, Action.FORCE_CLOSE, expected=None) == (BreakerState.CLOSED, 5, "forced_close")
    assert _go(Circuit(), Action.FORCE_CLOSE, expected=None) is None
    assert _go(Circuit(), Action.RESET, expected=None) is None


def test_quorum_report_then_open() -> None:
    """With open_quorum=2 the first trip is a report (same generation), the second opens."""
    config = BreakerConfig(open_quorum=2)
    first = transition(Circuit(), Action.TRIP, expected=0, now=T0, me="a", config=config)
    assert first is not None
    assert not first.is_transition
    assert first.after.reports == (Report("a", T0),)
    assert transition(first.after, Action.TRIP, expected=0, now=T0, me="a",
                      config=config) is None

    second = transition(first.after, Action.TRIP, expected=0, now=T0, me="b", config=config)

    assert second is not None
    assert second.is_transition
    assert (second.after.state, second.after.reports, second.reason) == (
        BreakerState.OPEN, (), "open_quorum"
    )
    assert second.after.trip_reports == 1


def test_document_round_trip() -> None:
    """to_document and from_document are inverse, and keep fields they do not know."""
    circuit = Circuit(BreakerState.HALF_OPEN, 7, opened_at=T0,
                      probe=Probe("x", T0, 1), reports=(), trip_reports=3,
                      changed_at=T0, changed_by="x", reason="reset_timeout_elapsed",
                      extra={"note": "kept"})

    data = to_document(circuit, "name")

    assert from_document(data) == circuit
    assert data["note"] == "kept"
    assert from_document(None) == Circuit()


@pytest.mark.parametrize(
    "data",
    [
        {"state": "sideways", "generation": 1},
        {"state": "closed", "generation": -1},
        {"state": "closed", "generation": True},
        {"state": "open", "generation": 1},
        {"state": "half_open", "generation": 1, "opened_at": T0},
        {"state": "closed", "generation": 1, "reports": [{"instance": "a", "at": "yesterday"}]},
        {"generation": 1},
    ],
)
def test_malformed_documents_raise_store_error(data: dict[str, Any]) -> None:
    """A document that is not a circuit raises StoreError, never a bare KeyError/TypeError."""
    with pytest.raises(StoreError, match="malformed"):
        from_document(data)
