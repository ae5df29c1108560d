"""Properties of the pure document functions (no store involved)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pipeline_reliability.completion._claims import confirm, release, try_claim
from pipeline_reliability.completion._doc import (
    Applied,
    Completion,
    apply_completion,
    done_set,
    ensure_doc,
    recount,
    rule_reason,
)
from pipeline_reliability.completion._spec import PhaseSpec
from pipeline_reliability.stores._values import normalise_document

T0 = datetime(2026, 1, 31, tzinfo=UTC)
SPEC = PhaseSpec(
    "p", {"a", "b", "c"}, min_to_trigger=2, critical={"a"}, done_empty_statuses={"no_data"}
)
NAMES = st.sampled_from(["a", "b", "c", "x"])
STATUSES = st.sampled_from(["success", "partial", "no_data", "failed", "skipped"])
# An execution id fixes its status and completion time, as a real run's report
# would; runs 2k and 2k+1 finish at the same instant (ties on completed_at).
RUNS = st.tuples(NAMES, st.integers(0, 6)).map(
    lambda t: Completion(
        processor=t[0],
        execution_id=f"{t[0]}-{t[1]}",
        status=["success", "partial", "no_data", "failed", "skipped", "success", "failed"][t[1]],
        reported_at=T0,
        message_id=f"m-{t[0]}-{t[1]}",
        completed_at=T0 + timedelta(minutes=t[1] // 2),
    )
)


def _apply_all(doc: dict[str, Any], runs: list[Completion]) -> list[Applied]:
    out = []
    for i, c in enumerate(runs):
        out.append(apply_completion(doc, SPEC, c, T0 + timedelta(seconds=i)))
        recount(doc, SPEC, T0)
    return out


def _expected_done(runs: list[Completion]) -> frozenset[str]:
    latest: dict[str, Completion] = {}
    for c in runs:  # the run that finished last wins; a tie goes to the larger execution id
        held = latest.get(c.processor)
        assert c.completed_at is not None
        if held is None or (c.completed_at, c.execution_id) > (
            held.completed_at,
            held.execution_id,
        ):
            latest[c.processor] = c
    return frozenset(
        p for p, c in latest.items() if p in SPEC.expected and c.status in SPEC.done_statuses
    )


@given(st.lists(RUNS, max_size=30))
def test_done_set_is_recomputed_from_latest_records(runs: list[Completion]) -> None:
    """The done set is the expected processors whose latest run has a done status."""
    doc = ensure_doc(None, "p", "2026-01-31")
    _apply_all(doc, runs)

    assert done_set(doc, SPEC) == _expected_done(runs)
    assert doc["meta"]["count"] == len(done_set(doc, SPEC))
    assert "x" not in done_set(doc, SPEC)


@given(st.lists(RUNS, max_size=30), st.randoms())
def test_arrival_order_does_not_change_the_outcome(runs: list[Completion], rnd: Any) -> None:
    """Item 1: the same runs delivered in any order leave the same records (and done set)."""
    docs = []
    for order in (runs, rnd.sample(runs, len(runs))):
        doc = ensure_doc(None, "p", "2026-01-31")
        _apply_all(doc, order)
        docs.append({n: (r["execution_id"], r["status"]) for n, r in doc["processors"].items()})

    assert docs[0] == docs[1]


@given(st.lists(RUNS, max_size=30))
def test_replaying_the_same_reports_changes_nothing(runs: list[Completion]) -> None:
    """Applying every report a second time yields only duplicates and an identical document."""
    doc = ensure_doc(None, "p", "2026-01-31")
    _apply_all(doc, runs)
    before = copy.deepcopy(doc)

    second = [apply_completion(doc, SPEC, c, T0) for c in runs]

    assert all(not a.changed for a in second)
    assert doc == before


@given(st.lists(RUNS, max_size=30))
def test_document_stays_storable(runs: list[Completion]) -> None:
    """Whatever was applied, the document is one a Firestore-like store accepts."""
    doc = ensure_doc(None, "p", "2026-01-31")
    _apply_all(doc, runs)
    try_claim(doc, SPEC, "2026-01-31", now=T0, deadline_now=T0, owner="o")

    assert normalise_document(doc) == doc


@given(st.frozensets(st.sampled_from(["a", "b", "c"])), st.booleans())
def test_rule_needs_everything_or_overdue_partial_with_critical(
    done: frozenset[str], overdue: bool
) -> None:
    """Complete needs every expected processor; partial needs overdue, min count and critical."""
    reason = rule_reason(SPEC, done, overdue)

    if done == SPEC.expected:
        assert reason == "complete"
    elif overdue and len(done) >= 2 and "a" in done:
        assert reason == "deadline_partial"
    else:
        assert reason is None


OPS = st.sampled_from(["claim", "confirm", "confirm_first", "release", "expire"])


@given(st.lists(OPS, max_size=20))
def test_at_most_one_confirmation_ever(ops: list[str]) -> None:
    """Whatever the order of claims, releases, expiries and confirms, one confirmation at most."""
    doc = ensure_doc(None, "p", "2026-01-31")
    _apply_all(doc, [Completion(n, "r", "success", T0) for n in ("a", "b", "c")])
    now, claims, confirmed = T0, [], 0
    for op in ops:
        if op == "claim":
            claim = try_claim(doc, SPEC, "2026-01-31", now=now, deadline_now=now, owner="o")
            if claim is not None:
                claims.append(claim)
        elif op == "expire":
            now += SPEC.trigger_lease
        elif claims and op == "release":
            release(doc, claims[-1], "failed", now)
        elif claims:
            claim = claims[0] if op == "confirm_first" else claims[-1]
            confirmed += confirm(doc, claim, now).value == "confirmed"

    assert confirmed <= 1
    assert [c.attempt for c in claims] == list(range(1, len(claims) + 1))
