"""
The breaker's per-instance state, and its store round-trips.

Store operations happen on a slow path, never under the instance lock and
each bounded by ``store_timeout``; reads, trips and elections are single flight, so
the threads of one instance share one read per ``cache_ttl`` and, while one
thread waits on the store, the others serve from the cached view.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import UTC, datetime

from .._clock import Clock
from .._telemetry import counter, log_failure, span
from ..errors import CircuitOpenError, StoreError
from ..stores._protocol import Outcome, Put, Snapshot, StateStore
from ._config import BreakerConfig
from ._events import (
    BreakerEvent,
    BreakerListener,
    TransitionEvent,
    notify,
)
from ._state import (
    Action,
    BreakerState,
    Change,
    Circuit,
    View,
    from_document,
    to_document,
    transition,
)
from ._windows import make_window

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "SHADOW", "Core", "logger"]

logger = logging.getLogger("pipeline_reliability.breaker")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
# ``CircuitOpenError.__new__(cls, name, state, seconds)``: the exception with its
# args and nothing else (no __init__, message or timedelta until asked for).
_open_error = CircuitOpenError.__new__
# The ticket of a call that observe mode lets through where it would reject: its
# generation (-1) matches none, so its outcome is recorded nowhere.
SHADOW = -2


class Core:
    """The state one breaker instance keeps, and how it reads and writes the shared circuit."""

    def __init__(
        self,
        name: str,
        *,
        key: str,
        store: StateStore,
        config: BreakerConfig,
        clock: Clock | None,
        instance_id: str,
    ) -> None:
        self.name = name
        self.key = key
        self.store = store
        self.config = config
        self.instance_id = instance_id
        # The real clock's monotonic() is called directly: one C call on the hot path.
        self._mono = time.monotonic if clock is None else clock.monotonic
        self._lock = threading.Lock()
        self._view = View(Circuit(), _EPOCH, 0.0)
        # The hot paths' gate: until then a fresh view (and, for a time window,
        # the current bucket) lets calls decide without the lock. It is the
        # earlier of _view_fresh (the cached view's expiry) and the window's
        # next bucket boundary, at which the slow path rolls the window.
        self._fresh_until = -math.inf
        self._view_fresh = -math.inf
        # The generation when calls may pass without the lock (a fresh CLOSED view), else -1.
        self._closed_gen = -1
        # Until this local time calls are rejected without the lock (a fresh OPEN view,
        # or another instance's probe, with nothing due yet).
        self._reject_until = -math.inf
        # What a rejection until then says, fixed when the view is adopted.
        self._reject_state: BreakerState = OPEN
        # When a call may be admitted again (None: unknown, a forced open). The
        # lock-free rejection happens only before it, so "due - now" is positive.
        self._reject_due: float | None = None
        self._reject_attrs: dict[str, str] = {}
        self._window = make_window(config)
        self._records_successes = config.records_successes
        self._observe = config.mode == "observe"
        self._probe_gen = -1
        self._probes_admitted = self._probe_successes = 0
        self._probes_running = 0  # my probes of _probe_gen admitted and not yet finished
        self._probe_deadline = -math.inf
        self._reported_gen = -1
        self._reported_mono = -math.inf
        self._store_error: StoreError | None = None
        # Single flight: a thread is reading, tripping or electing; the others
        # decide on the cached view and never wait on the store.
        self._busy = False
        self._epoch = 0  # counts adoptions: orders overlapping store results
        self._listeners: tuple[BreakerListener, ...] = ()
        self._pending: list[BreakerEvent] = []
        self._attrs = {"breaker": name}
        self._rejection_attrs: dict[str, dict[str, str]] = {}
        self._c_transitions = counter("breaker.transitions", "Circuit breaker state transitions")
        self._c_rejections = counter("breaker.rejections", "Calls rejected by a circuit breaker")
        self._c_reads = counter("breaker.store_reads", "Circuit breaker store reads")
        self._c_writes = counter("breaker.store_writes", "Circuit breaker store writes")
        self._c_errors = counter("breaker.store_errors", "Circuit breaker store failures")

    def _read_at(self) -> datetime | None:
        """The store time of the view's read (``None``: the store was never read)."""
        view = self._view
        return None if view.store_now is _EPOCH else view.store_now
    def _rejection_attributes(self, reason: str) -> dict[str, str]:
        attrs = self._rejection_attrs.get(reason)
        if attrs is None:
            attrs = self._rejection_attrs[reason] = {"breaker": self.name, "reason": reason,
                                                     "mode": self.config.mode}
        return attrs
    # ------------------------------------------------------------------ store
    #
    # Store I/O never runs under the instance lock, and is bounded by
    # store_timeout. Reads, trips and elections are single flight (``_busy``):
    # while one thread is at the store the others decide on the cached view.

    def _refresh(self, mono: float, *, force: bool = False) -> StoreError | None:
        """
        Re-read the circuit unless another thread is at the store (then use the cached view).

        ``force`` (an explicit ``status(refresh=True)``) always reads, with the
        store's default deadline. Returns the store error, if the read failed.
        """
        with self._lock:
            if not force:
                if self._busy or self._mono() < self._view_fresh:
                    return None
                self._busy = True
            epoch = self._epoch
        try:
            with span("breaker", "refresh", lambda: {"breaker": self.name}):
                try:
                    snap = self.store.get(
                        self.config.collection, self.key,
                        timeout=None if force else self.config.store_timeout,
                    )
                    circuit = from_document(snap.data)
                except StoreError as exc:
                    with self._lock:
                        self._store_failed(exc, "read")
                    return exc
            self._c_reads.add(1, self._attrs)
            with self._lock:
                self._adopt(circuit, snap.now, mono, None, epoch)
            return None
        finally:
            if not force:
                with self._lock:
                    self._busy = False

    def _transact(
        self,
        action: Action,
        expected: int | None,
        mono: float,
        *,
        single_flight: bool = False,
        operator: bool = False,
        probes_running: bool = False,
        trip_reason: str = "failure_threshold",
    ) -> Change | None:
        """
        Run ``action`` as a compare-and-set on the generation; adopt the result.

        ``single_flight``: the caller set ``_busy``, released here. ``operator``:
        store errors raise, and the store's default deadline applies.
        ``probes_running``: other probes of this instance still run (a failed
        probe then keeps their lease, so no new probe starts before it ends).
        """

        def decide(snap: Snapshot) -> Outcome[tuple[Circuit, datetime, Change | None]]:
            current = from_document(snap.data)
            change = transition(
                current, action, expected=expected, now=snap.now,
                me=self.instance_id, config=self.config, probes_running=probes_running,
                trip_reason=trip_reason,
            )
            if change is None:
                return Outcome((current, snap.now, None))
            write = Put(to_document(change.after, self.name))
            return Outcome((change.after, snap.now, change), write)

        epoch = self._epoch
        attrs = {"breaker": self.name, "action": action.value, "generation": expected}
        try:
            with span("breaker", "transition", attrs):
                try:
                    circuit, store_now, change = self.store.transact(
                        self.config.collection, self.key, decide,
                        timeout=None if operator else self.config.store_timeout,
                    )
                except StoreError as exc:
                    with self._lock:
                        self._store_failed(exc, action.value)
                    if operator:
                        raise
                    return None
            self._c_reads.add(1, self._attrs)
            if change is not None:
                self._c_writes.add(1, self._attrs)
            with self._lock:
                self._adopt(circuit, store_now, mono, change, epoch)
            return change
        finally:
            if single_flight:
                with self._lock:
                    self._busy = False

    def _store_failed(self, exc: StoreError, operation: str) -> None:
        policy = self.config.on_store_error
        self._c_errors.add(1, {"breaker": self.name, "operation": operation})
        log_failure(
            logger,
            f"circuit breaker {self.name!r}: store {operation} failed; "
            f"{'serving with the local view' if policy == 'fail_open' else 'rejecting calls'}"
            f" for {self.config.cache_ttl:g}s",
            exc, breaker=self.name, operation=operation, policy=policy,
        )
        # Back off for one cache_ttl from now, the END of the failed call (a call
        # that hung until its deadline must not leave the back-off half spent):
        # a failing store is not hammered once per call.
        self._reject_until = -math.inf
        self._store_error = exc
        self._view_fresh = self._mono() + self.config.cache_ttl
        self._fresh_until = min(self._view_fresh, self._window.next_roll)
        if policy == "fail_closed":
            self._closed_gen = -1

    def _adopt(
        self,
        circuit: Circuit,
        store_now: datetime,
        mono: float,
        change: Change | None,
        epoch: int,
    ) -> None:
        """
        Make ``circuit`` (read at store time ``store_now``, local ``mono``) the cached view.

        Store calls overlap (a probe verdict beside a read): a result older
        than one adopted since its call began (``epoch``) is dropped.
        """
        old = self._view.circuit
        if epoch != self._epoch and circuit.generation < old.generation:
            return
        self._epoch += 1
        self._closed_gen = -1
        self._reject_until = -math.inf
        self._view = View.of(circuit, store_now, mono, self.config)
        self._store_error = None
        if circuit.generation != old.generation:
            self._moved(old, circuit, store_now, mono, change)
        self._view_fresh = mono + self.config.cache_ttl
        self._fresh_until = min(self._view_fresh, self._window.next_roll)
        if circuit.state is CLOSED:
            self._closed_gen = circuit.generation
        elif self._observe:
            pass  # observe mode never rejects: every call takes the slow path to be counted
        elif circuit.state is OPEN or (
            circuit.probe is not None and circuit.probe.holder != self.instance_id
        ):
            # Everything the lock-free rejection needs, set before the window opens.
            reason = ("half_open" if circuit.state is HALF_OPEN
                      else "forced_open" if circuit.forced else "open")
            self._reject_state = circuit.state
            due = self._view.due
            self._reject_due = None if due == math.inf else due
            self._reject_attrs = self._rejection_attributes(reason)
            self._reject_until = min(self._view_fresh, self._view.due)

    def _moved(
        self, old: Circuit, new: Circuit, store_now: datetime, mono: float, change: Change | None
    ) -> None:
        # Outcomes and reports belong to the generation they were seen in.
        self._window.clear()
        self._reported_gen = -1
        probe = new.probe
        if new.state is HALF_OPEN and probe is not None and probe.holder == self.instance_id:
            self._probe_gen = new.generation
            self._probes_admitted = self._probe_successes = self._probes_running = 0
            self._probe_deadline = mono + (probe.expires_at - store_now).total_seconds()
        # Local: this instance wrote the change (or wrote it and lost the response).
        local = change is not None or (
            new.changed_by == self.instance_id and new.generation == old.generation + 1
        )
        reason = new.reason or "unknown"
        if local:
            self._c_transitions.add(
                1, {"breaker": self.name, "from": old.state.value, "to": new.state.value,
                    "reason": reason},
            )
        level = logging.WARNING if local and new.state is OPEN else logging.INFO
        if not local:
            level = logging.DEBUG
        logger.log(
            level, "circuit %r %s -> %s (generation %d, %s, %s)", self.name, old.state.value,
            new.state.value, new.generation, reason, "local" if local else "adopted",
            extra={"pipeline_reliability": {"breaker": self.name, "generation": new.generation}},
        )
        if self._listeners:
            self._pending.append(
                TransitionEvent(
                    self.name, self.instance_id, old.state, new.state, new.generation,
                    reason, local, new.changed_at,
                )
            )

    def _flush(self) -> None:
        with self._lock:
            events, self._pending = self._pending, []
        listeners = self._listeners
        for event in events:
            notify(listeners, event)

