"""Fault injection around any StateStore: the failures DESIGN §1 is about, on demand."""

from __future__ import annotations

import enum
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

from ..errors import StoreConflictError, StoreUnavailableError
from ..stores._protocol import Outcome, Snapshot, StateStore
from ._wrapper import StoreWrapper

__all__ = ["DEFAULT_FAULTS", "HANG", "Fault", "FaultPlan", "FaultyStore", "Hang", "fault_error"]

R = TypeVar("R")


class Fault(enum.Enum):
    """
    What :class:`FaultyStore` can do to one operation.

    - ``UNAVAILABLE``: the store cannot be reached; nothing happens.
    - ``DEADLINE_EXCEEDED``: the call times out before committing; nothing happens.
    - ``ABORTED``: a concurrent writer aborts the first attempt; the callback
      runs an extra time and its first result is discarded (as Firestore
      retries aborted transactions). On ``get`` it behaves like ``UNAVAILABLE``.
    - ``CONTENTION``: the transaction gives up after conflicts (``StoreConflictError``).
    - ``LOST_RESPONSE``: the operation is applied, then the response is lost
      (``StoreUnavailableError`` with ``maybe_committed=True``).

    A store that does not answer at all is not one of these (so that drawing
    from ``list(Fault)`` never blocks): see :meth:`FaultyStore.hang_next`.
    """

    UNAVAILABLE = "unavailable"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    ABORTED = "aborted"
    CONTENTION = "contention"
    LOST_RESPONSE = "lost_response"


class Hang(enum.Enum):
    """A call that does not answer (drawn like a fault, but not one: see :class:`Fault`)."""

    HANG = "hang"


HANG = Hang.HANG

#: What ``probability`` draws from unless ``faults`` says otherwise.
DEFAULT_FAULTS = (Fault.UNAVAILABLE, Fault.ABORTED, Fault.LOST_RESPONSE)


class FaultPlan:
    """
    Which operation gets which fault, and the hangs in progress: the part of
    :class:`FaultyStore` and :class:`AsyncFaultyStore` that does not wait.

    Subclasses add the wrapper (sync or async) and the way a hang waits.
    """

    def __init__(
        self,
        *,
        plan: Mapping[int, Fault] | None,
        probability: float,
        faults: Iterable[Fault],
        seed: int,
        operations: Iterable[str],
        hang_timeout: float,
    ) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        if not 0.0 < hang_timeout <= 3600.0:
            raise ValueError("hang_timeout must be within (0, 3600] seconds")
        self.plan = dict(plan or {})
        self.probability = probability
        self.faults = tuple(faults)
        self.operations = frozenset(operations)
        self.injected: list[tuple[int, str, Fault]] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._count = 0
        self._next: list[Fault | Hang] = []
        self._outage: Fault | Hang | None = None
        self.hangs: list[tuple[int, str]] = []
        self.hang_timeout = hang_timeout
        self._release = threading.Event()
        self._wakers: list[Callable[[], None]] = []
        self._hang_changed = threading.Condition(self._lock)
        self._hanging = 0

    def fail_next(self, fault: Fault, times: int = 1) -> None:
        """Inject ``fault`` into the next ``times`` operations."""
        with self._lock:
            self._next.extend([fault] * times)

    def hang_next(self, times: int = 1) -> None:
        """Make the next ``times`` operations hang (see the class docstring)."""
        with self._lock:
            self._next.extend([HANG] * times)

    def set_outage(self, active: bool, *, hang: bool = False) -> None:
        """Start or end an outage: every operation fails (or, with ``hang``, hangs)."""
        with self._lock:
            self._outage = (HANG if hang else Fault.UNAVAILABLE) if active else None
        if not active:
            self.release_hangs()

    @contextmanager
    def outage(self, *, hang: bool = False) -> Iterator[None]:
        """Fail (or, with ``hang``, hang) every operation inside the block; hangs end with it."""
        self.set_outage(True, hang=hang)
        try:
            yield
        finally:
            self.set_outage(False)

    @property
    def hanging(self) -> int:
        """How many calls are blocked in a hang right now."""
        with self._lock:
            return self._hanging

    def release_hangs(self) -> None:
        """End every current hang now (each raises ``StoreUnavailableError``); later ones hang."""
        with self._lock:
            released, self._release = self._release, threading.Event()
            wakers, self._wakers = self._wakers, []
        released.set()
        for wake in wakers:
            wake()

    @contextmanager
    def _hang(self, wake: Callable[[], None] | None = None) -> Iterator[threading.Event]:
        """
        Count one call as hanging while the block runs; yield the event that ends it.

        ``wake`` (an async hang's way to be woken from any thread) is called
        by :meth:`release_hangs` while the block runs.
        """
        with self._hang_changed:
            self._hanging += 1
            if wake is not None:
                self._wakers.append(wake)
            self._hang_changed.notify_all()
            release = self._release
        try:
            yield release
        finally:
            with self._hang_changed:
                self._hanging -= 1
                if wake is not None and wake in self._wakers:
                    self._wakers.remove(wake)
                self._hang_changed.notify_all()

    def _hang_seconds(self, timeout: float | None) -> float:
        return self.hang_timeout if timeout is None else timeout

    def _draw(self, operation: str) -> Fault | Hang | None:
        with self._lock:
            index = self._count
            self._count += 1
            if operation not in self.operations:
                return None
            fault: Fault | Hang | None
            if self._outage is not None:
                fault = self._outage
            elif self._next:
                fault = self._next.pop(0)
            elif index in self.plan:
                fault = self.plan[index]
            elif self.probability and self._rng.random() < self.probability:
                fault = self._rng.choice(self.faults)
            else:
                fault = None
            if fault is HANG:
                self.hangs.append((index, operation))
            elif fault is not None:
                self.injected.append((index, operation, fault))
            return fault


class FaultyStore(FaultPlan, StoreWrapper):
    """
    Wrap a store and inject faults by plan, by probability, or during an outage.

    Operations are numbered from 0 in call order (``get`` and ``transact``
    alike). ``plan`` maps an operation number to a fault; ``probability``
    draws a fault from ``faults`` with a seeded RNG for every other call;
    :meth:`outage` makes every call fail with ``UNAVAILABLE`` while active.

    A store that does not answer: :meth:`hang_next` (or ``outage(hang=True)``)
    makes calls block until the caller's ``timeout`` runs out (``hang_timeout``
    for a call without one), then raise ``StoreUnavailableError`` as a real
    store's deadline does; nothing is applied. A hang waits on an event, not a
    sleep: :meth:`release_hangs` ends every hang at once, and
    :meth:`wait_hanging` lets a test wait until a call is blocked. Hangs are
    recorded in ``hangs`` as ``(operation number, operation)``.

    :class:`AsyncFaultyStore` is its twin for an ``AsyncStateStore``.

    Example::

        store = FaultyStore(MemoryStore(), plan={0: Fault.LOST_RESPONSE})
        store.fail_next(Fault.UNAVAILABLE, times=2)
        with store.outage(hang=True):
            ...  # every call blocks until its timeout, then raises
    """

    def __init__(
        self,
        inner: StateStore,
        *,
        plan: Mapping[int, Fault] | None = None,
        probability: float = 0.0,
        faults: Iterable[Fault] = DEFAULT_FAULTS,
        seed: int = 0,
        operations: Iterable[str] = ("get", "transact"),
        hang_timeout: float = 30.0,
    ) -> None:
        FaultPlan.__init__(
            self,
            plan=plan,
            probability=probability,
            faults=faults,
            seed=seed,
            operations=operations,
            hang_timeout=hang_timeout,
        )
        StoreWrapper.__init__(self, inner)

    def wait_hanging(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` calls hang; ``False`` if ``timeout`` passed first."""
        with self._hang_changed:
            return self._hang_changed.wait_for(lambda: self._hanging >= count, timeout)

    def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
        """Read, unless a fault is due."""
        fault = self._draw("get")
        if fault is not None and fault is not Fault.LOST_RESPONSE:
            raise self._fail(fault, collection, key, timeout)
        snap = self.inner.get(collection, key, timeout=timeout)
        if fault is Fault.LOST_RESPONSE:
            raise fault_error(fault, collection, key)
        return snap

    def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        """Transact, unless a fault is due."""
        fault = self._draw("transact")
        if fault is Fault.ABORTED:
            # The first attempt's decision is thrown away, as after a real abort.
            fn(self.inner.get(collection, key, timeout=timeout))
            return self.inner.transact(collection, key, fn, timeout=timeout)
        if fault is not None and fault is not Fault.LOST_RESPONSE:
            raise self._fail(fault, collection, key, timeout)
        result = self.inner.transact(collection, key, fn, timeout=timeout)
        if fault is Fault.LOST_RESPONSE:
            raise fault_error(fault, collection, key)
        return result

    def _fail(
        self, fault: Fault | Hang, collection: str, key: str, timeout: float | None
    ) -> Exception:
        if fault is HANG:
            with self._hang() as release:
                release.wait(self._hang_seconds(timeout))
        return fault_error(fault, collection, key)


def fault_error(fault: Fault | Hang, collection: str, key: str) -> Exception:
    where = f"{collection}/{key}"
    if fault is Fault.CONTENTION:
        return StoreConflictError(f"injected contention on {where}", attempts=5)
    if fault is Fault.LOST_RESPONSE:
        return StoreUnavailableError(
            f"injected lost response on {where} (the write was applied)", maybe_committed=True
        )
    if fault is Fault.DEADLINE_EXCEEDED:
        return StoreUnavailableError(f"injected deadline exceeded on {where}")
    if fault is HANG:
        return StoreUnavailableError(f"injected hang on {where}: no answer before the deadline")
    return StoreUnavailableError(f"injected unavailability on {where}")
