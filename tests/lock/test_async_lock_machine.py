"""
AsyncDateLock under random operation sequences.

- The stateful ``LockMachine`` of the sync lock (several clients, a fake
  clock, injected store faults, the F7 safety properties checked after every
  step) runs unchanged with AsyncDateLocks in place of its DateLocks.
- A differential test runs one random sequence of operations on sync
  DateLocks over a MemoryStore and on AsyncDateLocks over an AsyncMemoryStore,
  each world on its own FakeClock: every outcome, token and expiry, every
  stored document and the time each world slept must be identical.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test
from lock_helpers import DATE, NAME
from test_lock_machine import CLIENTS, PROCEED, TTL, LockMachine

from async_bridge import SyncLockView
from pipeline_reliability import (
    AsyncDateLock,
    AsyncMemoryStore,
    DateLock,
    LockError,
    MemoryStore,
    StoreError,
)
from pipeline_reliability.lock import break_lock
from pipeline_reliability.testing import FakeClock
from store_backends import AsyncOverSync


class AsyncLockMachine(LockMachine):
    """The sync lock's state machine, its clients holding AsyncDateLocks."""

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        store = AsyncOverSync(self.store)  # the machine's FaultyStore, awaited
        self.locks = [
            SyncLockView(  # type: ignore[misc]
                AsyncDateLock(
                    store,
                    NAME,
                    DATE,
                    owner=f"client-{i}",
                    clock=self.clock,
                    ttl=TTL,
                    on_store_error="proceed" if i == PROCEED else "fail_closed",
                ),
                self.runner,
            )
            for i in range(CLIENTS)
        ]

    def teardown(self) -> None:
        self.runner.close()
        super().teardown()


def test_async_lock_machine() -> None:
    """Safety of the async form under random steps and faults (the sync machine's rules)."""
    run_state_machine_as_test(AsyncLockMachine)


def test_async_machine_uses_async_locks() -> None:
    """Guard: the machine above really drives AsyncDateLocks."""
    machine = AsyncLockMachine()
    try:
        assert all(isinstance(lock.inner, AsyncDateLock) for lock in machine.locks)  # type: ignore[attr-defined]
    finally:
        machine.teardown()


# -- differential: one sequence, two forms -------------------------------------------------

LOCKS = 3
DIFF_TTL = 30.0
clients = st.integers(0, LOCKS - 1)
operations = st.one_of(
    st.tuples(st.just("acquire"), clients),
    st.tuples(st.just("acquire_wait"), clients, st.floats(0, 2 * DIFF_TTL)),
    st.tuples(st.just("release"), clients),
    st.tuples(st.just("renew"), clients),
    st.tuples(st.just("ensure_held"), clients),
    st.tuples(st.just("locked"), clients),
    st.tuples(st.just("advance"), st.floats(0, 2 * DIFF_TTL)),
    # Move store time to the current lease's expiry, a microsecond before, or after.
    st.tuples(st.just("to_expiry"), st.sampled_from([-1, 0, 1])),
    st.tuples(st.just("break"), st.booleans()),
)


class World:
    """Three clients of one lock, in one form, on their own store and clock."""

    def __init__(self, form: str) -> None:
        self.clock = FakeClock()
        self.memory = MemoryStore(clock=self.clock)
        self.runner = asyncio.Runner() if form == "async" else None
        self.locks: list[Any] = []
        for i in range(LOCKS):
            options: dict[str, Any] = {
                "owner": f"client-{i}",
                "clock": self.clock,
                "ttl": DIFF_TTL,
            }
            if self.runner is None:
                lock: Any = DateLock(self.memory, NAME, DATE, **options)
                target = lock
            else:
                inner = AsyncDateLock(AsyncMemoryStore(store=self.memory), NAME, DATE, **options)
                lock, target = SyncLockView(inner, self.runner), inner
            # Same seeds, so that both forms draw the same jittered poll delays.
            target._rng = random.Random(i)
            self.locks.append(lock)

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()

    def document(self) -> dict[str, Any]:
        """Every stored document, lease ids reduced to "present" (they are random)."""
        docs = self.memory.dump()
        for collection in docs.values():
            for doc in collection.values():
                if "lease_id" in doc:
                    doc["lease_id"] = doc["lease_id"] is not None
        return docs

    def apply(self, op: tuple[Any, ...]) -> tuple[Any, ...]:
        """Run one operation; what it returned or raised, in comparable form."""
        try:
            return ("ok", self._apply(op))
        except (LockError, StoreError) as exc:
            return ("error", type(exc).__name__, getattr(exc, "holder", None),
                    getattr(exc, "expires_at", None))

    def _apply(self, op: tuple[Any, ...]) -> Any:
        handler = getattr(self, f"_{op[0]}")
        return handler(*op[1:])

    def _advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def _to_expiry(self, microseconds: int) -> None:
        docs = self.memory.dump().get("date_locks", {})
        at = docs.get(self.locks[0].key, {}).get("expires_at")
        if at is not None:
            target = at + dt.timedelta(microseconds=microseconds)
            if target > self.clock.now():
                self.clock.advance(target - self.clock.now())

    def _break(self, with_token: bool) -> int | None:
        token = self.memory.dump().get("date_locks", {}).get(self.locks[0].key, {}).get("token")
        return break_lock(self.memory, NAME, DATE, token=token if with_token else None)

    def _acquire(self, c: int) -> tuple[Any, ...]:
        return _lease_state(self.locks[c].acquire(blocking=False))

    def _acquire_wait(self, c: int, timeout: float) -> tuple[Any, ...]:
        return _lease_state(self.locks[c].acquire(timeout=timeout))

    def _release(self, c: int) -> None:
        self.locks[c].release()

    def _locked(self, c: int) -> bool:
        return bool(self.locks[c].locked())

    def _renew(self, c: int) -> Any:
        lease = self.locks[c].lease
        return "no lease" if lease is None else lease.renew()

    def _ensure_held(self, c: int) -> Any:
        lease = self.locks[c].lease
        if lease is None:
            return "no lease"
        lease.ensure_held()
        return (lease.expires_at, lease.lost, lease.remaining())


def _lease_state(lease: Any) -> tuple[Any, ...]:
    return (lease.token, lease.acquired_at, lease.expires_at, lease.fenced)


@given(st.lists(operations, max_size=40))
def test_sync_and_async_forms_agree_on_every_step(ops: list[tuple[Any, ...]]) -> None:
    """Identical outcomes, tokens, expiries, documents and slept time, step by step."""
    sync, async_ = World("sync"), World("async")
    try:
        for step, op in enumerate(ops):
            expected, got = sync.apply(op), async_.apply(op)
            assert got == expected, f"step {step} {op}: sync {expected}, async {got}"
            assert async_.document() == sync.document(), f"documents differ after {op}"
            assert async_.clock.monotonic() == sync.clock.monotonic()
            assert async_.clock.sleeps == sync.clock.sleeps
    finally:
        sync.close()
        async_.close()
