"""
AsyncDateLock: the sync lock's scenario tests run through it, and what only asyncio has.

The sync scenarios (acquire, contention, release, leases, tokens, F7) run
unchanged on ``AsyncDateLock`` through ``async_bridge.SyncLockView``. Then:
tasks contending through ``asyncio.gather``, the auto-renewal task, cancelled
holders, the store-type checks, and the expiry boundary judged by both forms.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import itertools
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
import test_lock_acquire
import test_lock_f7_regression
import test_lock_lease
import test_lock_tokens
from lock_helpers import DATE, NAME, TTL, MakeLock, lock_doc

from async_bridge import SyncLockView
from pipeline_reliability import (
    AsyncDateLock,
    AsyncLease,
    AsyncMemoryStore,
    ConfigurationError,
    DateLock,
    InvalidInputError,
    LockError,
    LockLostError,
    LockNotAcquiredError,
    MemoryStore,
    Outcome,
    Snapshot,
    StoreUnavailableError,
)
from pipeline_reliability.lock import break_lock
from pipeline_reliability.lock._renewer import RENEW_FRACTION
from pipeline_reliability.testing import FakeClock, Fault, FaultyStore
from store_backends import AsyncOverSync

INTERVAL = TTL * RENEW_FRACTION


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for the whole test (renewal tasks live across calls)."""
    with asyncio.Runner() as run:
        yield run


@pytest.fixture
def async_make_lock(
    memory_store: MemoryStore, fake_clock: FakeClock, runner: asyncio.Runner
) -> MakeLock:
    """``make_lock`` with AsyncDateLocks behind DateLock-shaped views."""

    def make(owner: str, store: Any = None, **options: Any) -> Any:
        options.setdefault("ttl", TTL)
        backing = AsyncMemoryStore(store=memory_store) if store is None else AsyncOverSync(store)
        lock = AsyncDateLock(
            backing,
            options.pop("name", NAME),
            options.pop("date", DATE),
            owner=owner,
            clock=fake_clock,
            **options,
        )
        return SyncLockView(lock, runner)

    return make


# -- the sync scenarios, run on the async form ----------------------------------------------

_FIXTURES = {"make_lock", "fake_clock", "memory_store"}
# Scenarios that build a DateLock themselves, use date_lock() or threads test the sync
# form only; the rest are written against ``make_lock`` and run here as they are.
_SYNC_ONLY = ("DateLock(", "date_lock(", "threading", "Thread(")


def _shared(*modules: ModuleType) -> list[Callable[..., None]]:
    cases: list[Callable[..., None]] = []
    for module in modules:
        for name, fn in sorted(vars(module).items()):
            if not name.startswith("test_") or not inspect.isfunction(fn):
                continue
            params = set(inspect.signature(fn).parameters)
            source = inspect.getsource(fn)
            if "make_lock" in params and params <= _FIXTURES and not any(
                marker in source for marker in _SYNC_ONLY
            ):
                cases.append(fn)
    return cases


SHARED = _shared(test_lock_acquire, test_lock_lease, test_lock_tokens, test_lock_f7_regression)


def test_the_shared_scenarios_are_many() -> None:
    """The filter keeps the bulk of the sync scenarios (it cannot silently drop them all)."""
    assert len(SHARED) >= 30


@pytest.mark.parametrize("case", SHARED, ids=lambda fn: f"{fn.__module__}::{fn.__name__}")
def test_async_form_passes_the_sync_scenario(
    case: Callable[..., None],
    async_make_lock: MakeLock,
    fake_clock: FakeClock,
    memory_store: MemoryStore,
) -> None:
    """Each sync scenario holds for AsyncDateLock, over the same MemoryStore and FakeClock."""
    available = {
        "make_lock": async_make_lock,
        "fake_clock": fake_clock,
        "memory_store": memory_store,
    }
    case(**{name: available[name] for name in inspect.signature(case).parameters})


# -- construction ----------------------------------------------------------------------------


def test_async_lock_refuses_a_blocking_store(memory_store: MemoryStore) -> None:
    """A MemoryStore has the right method names but blocks: ConfigurationError, not a hang."""
    with pytest.raises(ConfigurationError, match="AsyncStateStore"):
        AsyncDateLock(memory_store, NAME, DATE)  # type: ignore[arg-type]


def test_item5_sync_lock_refuses_an_async_store(memory_store: MemoryStore) -> None:
    """
    DateLock given an AsyncMemoryStore raises ConfigurationError naming AsyncDateLock.

    Before: ``isinstance(store, StateStore)`` passed (the protocols share
    method names) and the first transaction returned an un-awaited coroutine.
    """
    with pytest.raises(ConfigurationError, match="AsyncDateLock"):
        DateLock(AsyncMemoryStore(store=memory_store), NAME, DATE)  # type: ignore[arg-type]


def test_item5_operator_calls_refuse_an_async_store(memory_store: MemoryStore) -> None:
    """DateLock.inspect and break_lock given an async store raise InvalidInputError."""
    store = AsyncMemoryStore(store=memory_store)
    with pytest.raises(InvalidInputError, match="AsyncDateLock"):
        DateLock.inspect(store, NAME, DATE)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="AsyncDateLock"):
        break_lock(store, NAME, DATE)  # type: ignore[arg-type]


def test_async_lock_validates_like_the_sync_lock(memory_store: MemoryStore) -> None:
    """Options and call arguments are checked by the same rules, with the same errors."""
    store = AsyncMemoryStore(store=memory_store)
    for bad in ({"ttl": 0}, {"owner": ""}, {"on_store_error": "ignore"}, {"on_lost": 3}):
        with pytest.raises(ConfigurationError):
            AsyncDateLock(store, NAME, DATE, **bad)
        with pytest.raises(ConfigurationError):
            DateLock(memory_store, NAME, DATE, **bad)
    with pytest.raises(InvalidInputError):
        AsyncDateLock(store, NAME, "2026-02-30")
    lock = AsyncDateLock(store, NAME, DATE)
    with pytest.raises(InvalidInputError):
        asyncio.run(lock.acquire(blocking=False, timeout=1))


def test_inspect_reads_the_lock_through_the_async_store(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """AsyncDateLock.inspect sees what DateLock.inspect sees."""
    store = AsyncMemoryStore(store=memory_store)

    async def scenario() -> None:
        lock = AsyncDateLock(store, NAME, DATE, owner="a", clock=fake_clock, ttl=TTL)
        lease = await lock.acquire()
        info = await AsyncDateLock.inspect(store, NAME, DATE)
        assert info == DateLock.inspect(memory_store, NAME, DATE)
        assert (info.holder, info.token, info.held) == ("a", lease.token, True)
        assert await lock.locked()
        with pytest.raises(InvalidInputError):
            await AsyncDateLock.inspect(memory_store, NAME, DATE)  # type: ignore[arg-type]

    asyncio.run(scenario())


# -- tasks contending ------------------------------------------------------------------------


class Interleaving:
    """An async store that yields to the loop before and after every operation."""

    def __init__(self, store: AsyncMemoryStore) -> None:
        self.inner = store
        self.stats = store.stats

    def reset_stats(self) -> None:
        self.inner.reset_stats()

    async def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
        await asyncio.sleep(0)
        snap = await self.inner.get(collection, key, timeout=timeout)
        await asyncio.sleep(0)
        return snap

    async def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[Any]],
        *,
        timeout: float | None = None,
    ) -> Any:
        await asyncio.sleep(0)
        result = await self.inner.transact(collection, key, fn, timeout=timeout)
        await asyncio.sleep(0)
        return result


def test_concurrent_tasks_exactly_one_holder(fake_clock: FakeClock) -> None:
    """Eight tasks acquire at once (interleaved at every await): one lease, seven refusals."""
    store = Interleaving(AsyncMemoryStore(clock=fake_clock))
    locks = [
        AsyncDateLock(store, NAME, DATE, owner=f"t{i}", clock=fake_clock, ttl=TTL)
        for i in range(8)
    ]

    async def scenario() -> list[AsyncLease | BaseException]:
        return await asyncio.gather(
            *(lock.acquire(blocking=False) for lock in locks), return_exceptions=True
        )

    outcomes = asyncio.run(scenario())

    leases = [o for o in outcomes if isinstance(o, AsyncLease)]
    assert len(leases) == 1
    assert all(isinstance(o, LockNotAcquiredError) for o in outcomes if o is not leases[0])
    assert sum(lock.lease is not None for lock in locks) == 1


def test_blocking_tasks_take_turns_and_never_overlap(fake_clock: FakeClock) -> None:
    """Tasks that wait for the lock each get it in turn; inside, there is only ever one."""
    store = Interleaving(AsyncMemoryStore(clock=fake_clock))
    inside: list[int] = []
    most = 0
    tokens: list[int] = []

    async def worker(i: int) -> None:
        nonlocal most
        lock = AsyncDateLock(store, NAME, DATE, owner=f"t{i}", clock=fake_clock, ttl=TTL)
        async with lock as lease:
            inside.append(i)
            most = max(most, len(inside))
            tokens.append(lease.token)
            for _ in range(3):
                await asyncio.sleep(0)  # let the others poll meanwhile
            inside.remove(i)

    async def scenario() -> None:
        await asyncio.gather(*(worker(i) for i in range(5)))

    asyncio.run(scenario())

    assert most == 1
    assert len(tokens) == 5
    assert tokens == sorted(tokens)
    assert len(set(tokens)) == 5


def test_blocking_acquire_times_out_by_the_clock(fake_clock: FakeClock) -> None:
    """A blocking acquire against a holder gives up at the timeout, measured on the clock."""
    store = AsyncMemoryStore(clock=fake_clock)

    async def scenario() -> None:
        await AsyncDateLock(store, NAME, DATE, owner="a", clock=fake_clock, ttl=600).acquire()
        start = fake_clock.monotonic()
        waiter = AsyncDateLock(store, NAME, DATE, owner="b", clock=fake_clock, ttl=600)
        with pytest.raises(LockNotAcquiredError):
            await waiter.acquire(timeout=10)
        assert fake_clock.monotonic() - start == pytest.approx(10)

    asyncio.run(scenario())


# -- auto-renewal as a task ------------------------------------------------------------------


def _auto(
    store: Any, clock: FakeClock, on_lost: Callable[..., Any] | None = None, owner: str = "a"
) -> AsyncDateLock:
    return AsyncDateLock(
        store, NAME, DATE, owner=owner, clock=clock, ttl=TTL, auto_renew=True, on_lost=on_lost
    )


async def _turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_auto_renew_task_keeps_the_lease_past_the_ttl(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """The renewal task (not a thread) renews every third of the TTL, far past the TTL."""
    store = AsyncMemoryStore(store=memory_store)
    lost: list[str] = []

    async def scenario() -> None:
        lock = _auto(store, fake_clock, on_lost=lambda lease, reason: lost.append(reason))
        lease = await lock.acquire()
        task = lock.renewal_task
        assert isinstance(task, asyncio.Task)
        start = fake_clock.monotonic()
        while fake_clock.monotonic() - start < 5 * TTL:
            await _turns(1)
        await lease.ensure_held()
        assert lease.expires_at is not None
        assert lease.expires_at > fake_clock.now()
        doc = lock_doc(memory_store, lock)  # type: ignore[arg-type]
        assert doc is not None
        assert doc["renewed_at"] is not None
        with pytest.raises(LockNotAcquiredError):
            await _auto(store, fake_clock, owner="b").acquire(blocking=False)
        await lock.release()
        assert task.done()
        assert lock.renewal_task is None

    asyncio.run(scenario())
    assert lost == []


@pytest.mark.parametrize("kind", ["function", "coroutine"])
def test_auto_renew_calls_on_lost_when_the_store_refuses(
    memory_store: MemoryStore, fake_clock: FakeClock, kind: str
) -> None:
    """An operator break makes the next renewal fail: on_lost (sync or async) runs once."""
    store = AsyncMemoryStore(store=memory_store)
    calls: list[tuple[AsyncLease, str]] = []

    def sync_hook(lease: AsyncLease, reason: str) -> None:
        calls.append((lease, reason))

    async def async_hook(lease: AsyncLease, reason: str) -> None:
        await asyncio.sleep(0)
        calls.append((lease, reason))

    async def scenario() -> None:
        lock = _auto(store, fake_clock, on_lost=sync_hook if kind == "function" else async_hook)
        lease = await lock.acquire()
        assert break_lock(memory_store, NAME, DATE) == lease.token
        task = lock.renewal_task
        assert task is not None
        await asyncio.wait_for(task, timeout=5)  # ends by itself once the loss is declared
        assert len(calls) == 1
        assert calls[0][0] is lease
        assert "break" in calls[0][1]
        assert lease.lost
        with pytest.raises(LockLostError):
            await lock.release()

    asyncio.run(scenario())


def test_auto_renew_declares_loss_only_after_the_deadline_in_an_outage(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """Renewals failing transiently are retried until the local deadline, then on_lost runs."""
    faulty = FaultyStore(memory_store)
    calls: list[str] = []

    async def scenario() -> None:
        lock = _auto(AsyncOverSync(faulty), fake_clock, on_lost=lambda _l, r: calls.append(r))
        await lock.acquire()
        start = fake_clock.monotonic()
        faulty.set_outage(True)
        task = lock.renewal_task
        assert task is not None
        await asyncio.wait_for(task, timeout=5)
        assert fake_clock.monotonic() - start >= TTL
        assert len(calls) == 1
        assert "deadline" in calls[0]

    asyncio.run(scenario())


def test_a_raising_on_lost_hook_is_logged_not_raised(
    memory_store: MemoryStore, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A hook that raises does not kill the loop or leave a task error unretrieved."""
    store = AsyncMemoryStore(store=memory_store)

    async def hook(_lease: AsyncLease, _reason: str) -> None:
        raise RuntimeError("hook broke")

    async def scenario() -> None:
        lock = _auto(store, fake_clock, on_lost=hook)
        await lock.acquire()
        break_lock(memory_store, NAME, DATE)
        task = lock.renewal_task
        assert task is not None
        await asyncio.wait_for(task, timeout=5)
        assert task.exception() is None

    asyncio.run(scenario())
    assert "on_lost callback raised" in caplog.text


def test_release_cancels_the_renewal_task(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """release() cancels the task and waits for it; no renewal happens afterwards."""
    store = AsyncMemoryStore(store=memory_store)

    async def scenario() -> None:
        lock = _auto(store, fake_clock)
        await lock.acquire()
        task = lock.renewal_task
        assert task is not None
        await _turns(3)
        await lock.release()
        assert task.cancelled()
        memory_store.reset_stats()
        await _turns(10)
        assert memory_store.stats.transactions == 0

    asyncio.run(scenario())


# -- cancellation of the holder ------------------------------------------------------------


def test_cancelling_the_task_inside_async_with_releases_the_lock(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """
    Stated behaviour: a holder cancelled inside ``async with`` releases on its way out.

    The CancelledError still reaches the task; the lock is free at once (no
    wait for the TTL) and the renewal task is gone.
    """
    store = AsyncMemoryStore(store=memory_store)
    entered = asyncio.Event()
    locks: list[AsyncDateLock] = []

    async def holder() -> None:
        lock = _auto(store, fake_clock)
        locks.append(lock)
        async with lock:
            entered.set()
            await asyncio.Event().wait()  # forever

    async def scenario() -> None:
        task = asyncio.create_task(holder())
        await entered.wait()
        renewal = locks[0].renewal_task
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert renewal is not None
        assert renewal.done()
        assert not await locks[0].locked()
        lease = await AsyncDateLock(store, NAME, DATE, owner="b", clock=fake_clock).acquire(
            blocking=False
        )
        assert lease.fenced

    asyncio.run(scenario())
    assert DateLock.inspect(memory_store, NAME, DATE).holder == "b"


def test_a_cancelled_holder_without_async_with_leaves_a_lease_that_expires(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """
    Stated behaviour: a lease acquired without ``async with`` (and no auto-renewal)
    is not released by cancelling its task; it lapses after the TTL, by store time.
    """
    store = AsyncMemoryStore(store=memory_store)
    entered = asyncio.Event()

    async def holder() -> None:
        await AsyncDateLock(store, NAME, DATE, owner="a", clock=fake_clock, ttl=TTL).acquire()
        entered.set()
        await asyncio.Event().wait()

    async def scenario() -> None:
        task = asyncio.create_task(holder())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        other = AsyncDateLock(store, NAME, DATE, owner="b", clock=fake_clock, ttl=TTL)
        with pytest.raises(LockNotAcquiredError):
            await other.acquire(blocking=False)
        fake_clock.advance(TTL)
        assert (await other.acquire(blocking=False)).fenced

    asyncio.run(scenario())


def test_store_failure_on_acquire_fails_closed(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """With the default policy an outage raises; with 'proceed' an unfenced lease comes back."""
    faulty = FaultyStore(memory_store)

    async def scenario() -> None:
        closed = AsyncDateLock(AsyncOverSync(faulty), NAME, DATE, owner="a", clock=fake_clock)
        proceed = AsyncDateLock(
            AsyncOverSync(faulty), NAME, DATE, owner="b", clock=fake_clock,
            on_store_error="proceed",
        )
        with faulty.outage():
            with pytest.raises(StoreUnavailableError):
                await closed.acquire(blocking=False)
            lease = await proceed.acquire(blocking=False)
            assert not lease.fenced
            assert lease.token == 0
            await proceed.release()
        assert closed.lease is None

    asyncio.run(scenario())


def test_one_async_lock_object_holds_one_lease(fake_clock: FakeClock) -> None:
    """A second acquire on the same object is a LockError, as for DateLock."""
    lock = AsyncDateLock(AsyncMemoryStore(clock=fake_clock), NAME, DATE, clock=fake_clock)

    async def scenario() -> None:
        await lock.acquire()
        with pytest.raises(LockError):
            await lock.acquire(blocking=False)
        await lock.release()
        with pytest.raises(LockError):
            await lock.release()

    asyncio.run(scenario())


# -- the expiry boundary, judged by both forms -----------------------------------------------

@pytest.mark.parametrize("form", ["sync", "async"])
@pytest.mark.parametrize(
    ("offset", "free"),
    [(dt.timedelta(0), True), (-dt.timedelta(microseconds=1), False)],
    ids=["at-expiry", "1us-before"],
)
def test_expiry_boundary_is_judged_identically_by_both_forms(
    request: pytest.FixtureRequest, fake_clock: FakeClock, form: str, *, offset: dt.timedelta,
    free: bool,
) -> None:
    """A lease whose expires_at equals store time is over; one microsecond earlier it is not."""
    make: MakeLock = request.getfixturevalue("make_lock" if form == "sync" else "async_make_lock")
    holder = make("a")
    lease = holder.acquire()
    assert lease.expires_at is not None
    fake_clock.advance(lease.expires_at - fake_clock.now() + offset)
    other = make("b")

    assert holder.locked() is not free
    if free:
        with pytest.raises(LockLostError):
            lease.ensure_held()
        with pytest.raises(LockLostError):
            lease.renew()
        assert other.acquire(blocking=False).token > lease.token
    else:
        lease.ensure_held()
        with pytest.raises(LockNotAcquiredError):
            other.acquire(blocking=False)
        assert lease.renew() == fake_clock.now() + dt.timedelta(seconds=TTL)


def test_shared_store_sync_and_async_locks_exclude_each_other(
    make_lock: MakeLock, async_make_lock: MakeLock
) -> None:
    """A DateLock and an AsyncDateLock on one store are the same lock, with one token series."""
    sync_lock, async_lock = make_lock("sync"), async_make_lock("async")
    first = sync_lock.acquire()
    with pytest.raises(LockNotAcquiredError):
        async_lock.acquire(blocking=False)
    sync_lock.release()
    second = async_lock.acquire(blocking=False)
    with pytest.raises(LockNotAcquiredError):
        sync_lock.acquire(blocking=False)
    assert second.token == first.token + 1


def test_lost_response_on_acquire_is_recovered(
    memory_store: MemoryStore, async_make_lock: MakeLock
) -> None:
    """An acquire whose grant committed but whose answer was lost reads back its own lease."""
    # Operation 2 (counted from 1) of the acquire is the grant; 1 reserves a token.
    faulty = FaultyStore(memory_store, operations=("transact",), plan={2: Fault.LOST_RESPONSE})
    lock = async_make_lock("a", store=faulty)

    lease = lock.acquire(blocking=False)

    assert [fault for _, _, fault in faulty.injected] == [Fault.LOST_RESPONSE]
    assert lease.fenced
    assert lease.token == 1
    lease.ensure_held()


def test_renewal_task_on_the_system_clock_sleeps_without_blocking_the_loop() -> None:
    """
    Real time, real asyncio.sleep: a 1 s lease renewed by the task outlives 2.5 s,
    while the loop stays free (a ticker task keeps running every 50 ms).
    """
    store = AsyncMemoryStore()  # the system clock
    ticks: list[float] = []

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while True:
            ticks.append(loop.time())
            await asyncio.sleep(0.05)

    async def scenario() -> None:
        lock = AsyncDateLock(store, NAME, DATE, owner="a", ttl=1.0, auto_renew=True)
        tick = asyncio.create_task(ticker())
        async with lock as lease:
            await asyncio.sleep(2.5)
            await lease.ensure_held()
        tick.cancel()

    asyncio.run(scenario())

    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) > 20
    assert max(gaps) < 0.5  # generous: the loop was never blocked for a renewal interval
