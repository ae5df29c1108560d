"""
Differential run of IdempotencyLedger: one generated sequence of claims,
completions and releases, replayed on MemoryStore and on the Firestore
emulator, must give the same outcomes. (Firestore judges time by its server
clock, which a test cannot move, so expiry is covered by the stateful test on
MemoryStore.)
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline_reliability import MemoryStore, PayloadMismatchError, StateStore
from pipeline_reliability.dedup import Claimed, IdempotencyLedger

pytestmark = pytest.mark.firestore

_RUNS = itertools.count()  # a fresh collection per example

operations = st.lists(
    st.tuples(
        st.sampled_from(["claim", "complete", "release"]),
        st.sampled_from(["w0", "w1"]),
        st.sampled_from(["m1", "m2"]),
        st.sampled_from(["p", "q"]),
    ),
    min_size=1,
    max_size=12,
)


def replay(store: StateStore, collection: str, ops: list[tuple[str, str, str, str]]) -> list[Any]:
    """Run ``ops`` with one ledger per worker; describe each outcome without ids or times."""
    ledgers = {
        w: IdempotencyLedger(store, owner=w, collection=collection, claim_ttl=timedelta(hours=1))
        for w in ("w0", "w1")
    }
    held: dict[tuple[str, str], Claimed] = {}
    seen: list[Any] = []
    for op, worker, key, payload in ops:
        ledger = ledgers[worker]
        try:
            if op == "claim":
                outcome = ledger.claim(key, payload)
                if isinstance(outcome, Claimed):
                    held[(worker, key)] = outcome
                seen.append((type(outcome).__name__, getattr(outcome, "attempt", None),
                             getattr(outcome, "owner", None), getattr(outcome, "result", None)))
            elif (worker, key) in held:
                claim = held.pop((worker, key))
                if op == "complete":
                    seen.append(("completed", ledger.complete(claim, payload).result))
                else:
                    seen.append(("released", ledger.release(claim)))
        except PayloadMismatchError:
            seen.append("mismatch")
    return seen


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=operations)
def test_memory_and_firestore_agree(firestore_store: StateStore, ops: Any) -> None:
    """The same operations give the same claims, conflicts, results and mismatches on both."""
    collection = f"idem{next(_RUNS)}"

    assert replay(firestore_store, collection, ops) == replay(MemoryStore(), collection, ops)
