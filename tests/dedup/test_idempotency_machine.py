"""
Stateful test of IdempotencyLedger: several logical workers claim, complete and
release two keys on one store while time moves and the store fails.

The model is the specification in miniature: one entry per key (state,
payload, holder, attempt, lease end, forget time). Faults injected by
FaultyStore (lost responses, unavailability, aborted commits) are absorbed by
the ledger's retries, so they must never change an observable outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pipeline_reliability import MemoryStore, PayloadMismatchError
from pipeline_reliability.dedup import Claimed, Completed, IdempotencyLedger, InProgress
from pipeline_reliability.retry import RetryPolicy, set_testing
from pipeline_reliability.testing import FakeClock, Fault, FaultyStore

WORKERS = ("w0", "w1", "w2")
KEYS = ("m1", "m2")
PAYLOADS = ("p", "q")
TTL = timedelta(seconds=60)
WINDOW = timedelta(seconds=600)


@dataclass
class Entry:
    """The model's view of one key."""

    state: str
    payload: str
    owner: str
    claim_id: str
    attempt: int
    lease_until: datetime
    forget_at: datetime
    result: Any = None


class LedgerMachine(RuleBasedStateMachine):
    """Workers racing over two keys, checked against a model."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.store = FaultyStore(MemoryStore(clock=self.clock))
        retry = RetryPolicy(attempts=4, deadline=None)
        self.ledgers = {
            w: IdempotencyLedger(
                self.store, owner=w, claim_ttl=TTL, expires_after=WINDOW, retry=retry
            )
            for w in WORKERS
        }
        self.model: dict[str, Entry] = {}
        # Retries never sleep during the machine (restored in teardown).
        self._testing = set_testing(True)
        # (worker, key) -> the Claimed it holds and the payload it claimed with
        self.held: dict[tuple[str, str], tuple[Claimed, str]] = {}

    def live(self, key: str) -> Entry | None:
        entry = self.model.get(key)
        if entry is None or self.clock.now() >= entry.forget_at:
            return None
        return entry

    @rule(worker=st.sampled_from(WORKERS), key=st.sampled_from(KEYS),
          payload=st.sampled_from(PAYLOADS))
    def claim(self, worker: str, key: str, payload: str) -> None:
        now = self.clock.now()
        entry = self.live(key)
        if entry is not None and entry.payload != payload:
            with pytest.raises(PayloadMismatchError):
                self.ledgers[worker].claim(key, payload)
            return
        outcome = self.ledgers[worker].claim(key, payload)
        if entry is not None and entry.state == "completed":
            assert isinstance(outcome, Completed)
            assert outcome.result == entry.result
        elif entry is not None and entry.state == "in_progress" and now < entry.lease_until:
            assert isinstance(outcome, InProgress)
            assert outcome.owner == entry.owner
            assert outcome.expires_at == entry.lease_until
        else:
            assert isinstance(outcome, Claimed)
            assert outcome.attempt == (1 if entry is None else entry.attempt + 1)
            assert outcome.expires_at == now + TTL
            self.model[key] = Entry(
                "in_progress", payload, worker, outcome.claim_id, outcome.attempt,
                now + TTL, now + WINDOW,
            )
            self.held[(worker, key)] = (outcome, payload)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), result=st.integers(0, 9))
    def complete(self, data: st.DataObject, result: int) -> None:
        worker, key = data.draw(st.sampled_from(sorted(self.held)))
        claim, payload = self.held.pop((worker, key))
        now = self.clock.now()
        entry = self.live(key)
        if entry is not None and entry.state != "completed" and entry.payload != payload:
            with pytest.raises(PayloadMismatchError):
                self.ledgers[worker].complete(claim, result)
            return
        done = self.ledgers[worker].complete(claim, result)
        if entry is not None and entry.state == "completed":
            assert done.result == entry.result
            return
        assert done.result == result
        if entry is None:
            # Forgotten meanwhile: the completion is recorded afresh under the claim's payload.
            entry = Entry("completed", payload, worker, "", 1, now, now, None)
        entry.state, entry.result, entry.forget_at = "completed", result, now + WINDOW
        self.model[key] = entry

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        worker, key = data.draw(st.sampled_from(sorted(self.held)))
        claim, _ = self.held.pop((worker, key))
        entry = self.live(key)
        released = self.ledgers[worker].release(claim)
        mine = (
            entry is not None and entry.state != "completed" and entry.claim_id == claim.claim_id
        )
        assert released is mine
        if mine and entry is not None and entry.state == "in_progress":
            entry.state = "released"
            entry.lease_until = self.clock.now()

    @rule(seconds=st.sampled_from([1, 30, 59, 60, 61, 300, 599, 600]))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    # At most two queued faults: the ledger's 4 attempts must absorb them all.
    @precondition(lambda self: len(self.store._next) < 2)
    @rule(fault=st.sampled_from([Fault.LOST_RESPONSE, Fault.UNAVAILABLE, Fault.ABORTED]))
    def fail_next_operation(self, fault: Fault) -> None:
        self.store.fail_next(fault)

    def teardown(self) -> None:
        self._testing.__exit__(None, None, None)

    @invariant()
    def at_most_one_live_claim_per_key(self) -> None:
        now = self.clock.now()
        for key in KEYS:
            holders = [
                w for (w, k), (claim, _) in self.held.items()
                if k == key and claim.expires_at > now
                and (entry := self.live(key)) is not None and entry.claim_id == claim.claim_id
            ]
            assert len(holders) <= 1

    @invariant()
    def store_agrees_with_the_model(self) -> None:
        docs = self.store.inner.dump().get("idempotency", {})  # type: ignore[attr-defined]
        by_key = {doc["key"]: doc for doc in docs.values()}
        for key in KEYS:
            entry = self.live(key)
            doc = by_key.get(key)
            if entry is None:
                assert doc is None or self.clock.now() >= doc["forget_at"]
                continue
            assert doc is not None
            assert doc["state"] == entry.state
            assert doc["attempt"] == entry.attempt


# max_examples comes from the loaded profile (dev 60, ci 100, nightly 2000).
LedgerMachine.TestCase.settings = settings(stateful_step_count=30, deadline=None)


TestLedgerMachine = LedgerMachine.TestCase
