"""
A hypothesis state machine of a ConcurrencyLimit against a model, on MemoryStore + FakeClock.

Holders take slots (try-once through the public API, or as queued waiters
through the very decision a waiting poll runs), release, renew, and time
moves, often to exactly a lease's end or one microsecond before it. The model
says who holds what until when and who waits in which order; the store must
agree, and never hold more than ``limit`` live slots.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pipeline_reliability import MemoryStore
from pipeline_reliability.errors import SlotLostError, SlotNotAcquiredError
from pipeline_reliability.limits import ConcurrencyLimit, Slot
from pipeline_reliability.limits._concurrency_options import TICKET_LEASE
from pipeline_reliability.limits._slots import (
    Granted,
    LimitDoc,
    Request,
    decide_acquire,
)
from pipeline_reliability.testing import FakeClock

LIMIT = 2
LEASE = timedelta(seconds=10)
US = timedelta(microseconds=1)
NAME = "machine"
WAITERS = ("w0", "w1", "w2")


@dataclass
class Lease:
    slot: Slot | None  # None for a waiter's grant (no Slot object)
    expires_at: datetime


class ConcurrencyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.store = MemoryStore(clock=self.clock)
        self.limits = [
            ConcurrencyLimit(NAME, self.store, limit=LIMIT, lease=LEASE, owner=f"i{i}",
                             clock=self.clock, max_waiters=2)
            for i in range(3)
        ]
        self.model: dict[str, Lease] = {}  # slot id -> lease
        self.queue: list[tuple[str, datetime]] = []  # (ticket, expires_at), oldest first
        self.requests = {
            w: Request(NAME, LIMIT, w, w, LEASE, TICKET_LEASE, max_waiters=2, enqueue=True)
            for w in WAITERS
        }

    # -- model helpers ---------------------------------------------------------------------

    def live(self) -> dict[str, Lease]:
        now = self.clock.now()
        return {k: v for k, v in self.model.items() if v.expires_at > now}

    def live_queue(self) -> list[str]:
        now, live = self.clock.now(), self.live()
        return [t for t, end in self.queue if end > now and t not in live]

    # -- rules ----------------------------------------------------------------------------

    @rule(instance=st.integers(0, 2))
    def try_once(self, instance: int) -> None:
        free = LIMIT - len(self.live())
        expected = free > len(self.live_queue())
        try:
            slot = self.limits[instance].acquire(timeout=0)
        except SlotNotAcquiredError:
            assert not expected, "refused although a slot was free for a newcomer"
            return
        assert expected, "granted beyond the limit or ahead of a queued waiter"
        assert slot.expires_at == self.clock.now() + LEASE
        self.model[slot.slot_id] = Lease(slot, slot.expires_at)

    @rule(waiter=st.sampled_from(WAITERS))
    def waiter_polls(self, waiter: str) -> None:
        now, live = self.clock.now(), self.live()
        queue = self.live_queue()
        ahead = queue.index(waiter) if waiter in queue else len(queue)
        already = waiter in live
        expected = already or LIMIT - len(live) > ahead
        req = self.requests[waiter]
        result = self.store.transact("concurrency_limits", NAME, lambda s: decide_acquire(s, req))
        assert isinstance(result, Granted) == expected
        self.queue = [(t, e) for t, e in self.queue if e > now and t not in live]
        if isinstance(result, Granted):
            if not already:
                self.model[waiter] = Lease(None, now + LEASE)
                self.queue = [(t, e) for t, e in self.queue if t != waiter]
            return
        if waiter in queue:
            index = queue.index(waiter)
            if self.queue[index][1] - now < TICKET_LEASE / 2:
                self.queue[index] = (waiter, now + TICKET_LEASE)
        elif len(queue) < 2:
            self.queue.append((waiter, now + TICKET_LEASE))

    @precondition(lambda self: any(v.slot is not None for v in self.model.values()))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        ids = [k for k, v in self.model.items() if v.slot is not None]  # insertion order
        slot_id = data.draw(st.sampled_from(ids))
        lease = self.model.pop(slot_id)
        assert lease.slot is not None
        assert lease.slot.release() == (lease.expires_at > self.clock.now())
        assert lease.slot.release() is False, "a second release frees nothing"

    @precondition(lambda self: any(v.slot is not None for v in self.model.values()))
    @rule(data=st.data())
    def renew(self, data: st.DataObject) -> None:
        ids = [k for k, v in self.model.items() if v.slot is not None]  # insertion order
        slot_id = data.draw(st.sampled_from(ids))
        lease = self.model[slot_id]
        assert lease.slot is not None
        if lease.expires_at > self.clock.now():
            assert lease.slot.renew() == self.clock.now() + LEASE
            lease.expires_at = self.clock.now() + LEASE
        else:
            try:
                lease.slot.renew()
            except SlotLostError:
                del self.model[slot_id]
            else:
                raise AssertionError("renewed a slot whose lease had ended")

    @rule(seconds=st.sampled_from([0.5, 3, 6, 11]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: bool(self.live()))
    @rule(exact=st.booleans())
    def advance_to_a_lease_end(self, exact: bool) -> None:
        """Exactly to the earliest lease end (then it is over), or one microsecond before."""
        end = min(v.expires_at for v in self.live().values())
        target = end if exact else end - US
        delta = target - self.clock.now()
        if delta > timedelta(0):
            self.clock.advance(delta)

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def store_agrees_with_the_model(self) -> None:
        snap = self.store.get("concurrency_limits", NAME)
        doc = LimitDoc.parse(snap)
        assert len(doc.holders) <= LIMIT
        assert set(doc.holders) == set(self.live())
        for slot_id, lease in self.live().items():
            assert doc.holders[slot_id].expires_at == lease.expires_at
        assert [t.ticket for t in doc.queue] == self.live_queue()


ConcurrencyMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40,
                                                deadline=None)
test_concurrency_machine = ConcurrencyMachine.TestCase
