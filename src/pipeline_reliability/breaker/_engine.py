"""
The breaker's engine: admission and outcome recording.

The hot path (a CLOSED circuit whose cached view is fresh) reads one
monotonic clock and two attributes, takes no lock and touches no store. Store
operations happen on a slow path (``_core``), never under the instance lock
and each bounded by ``store_timeout``.
"""

from __future__ import annotations

import math
from datetime import timedelta

from .._telemetry import log_failure
from ..errors import CircuitOpenError
from ._core import _EPOCH, CLOSED, HALF_OPEN, SHADOW, Core, _open_error, logger
from ._events import RejectionEvent, TripReportEvent, notify
from ._state import Action, Change, Circuit

__all__ = ["Engine"]


class Engine(Core):
    """Admission and outcomes, shared by the public :class:`CircuitBreaker` API."""

    # ------------------------------------------------------------------ admission

    def _admit(self) -> int:
        """Admit a call or raise ``CircuitOpenError``; returns the call's ticket."""
        # Tickets are ``generation << 1 | is_probe``: one int, no allocation.
        mono = self._mono()
        if mono < self._fresh_until:
            gen = self._closed_gen
            if gen >= 0:
                return gen << 1
            if mono < self._reject_until and not self._listeners:
                # A fresh OPEN view and nobody listening (issue 13): count and
                # raise, nothing else: every call of an outage comes here.
                self._c_rejections.add(1, self._reject_attrs)
                due = self._reject_due
                raise _open_error(
                    CircuitOpenError, self.name, self._reject_state,
                    None if due is None else due - mono,
                )
        return self._admit_slow()

    def _admit_slow(self) -> int:
        try:
            mono = self._mono()
            if mono < self._reject_until:
                raise self._reject(mono, None, locked=False)
            if mono >= self._window.next_roll:
                self._roll(mono)
            if mono >= self._view_fresh:
                # Single flight: returns at once when another thread is at the store.
                self._refresh(mono)
            return self._admit_view()
        except CircuitOpenError:
            if self._observe:
                return SHADOW  # observe mode: counted and reported, never rejected
            raise
        finally:
            if self._pending:
                self._flush()

    def _admit_view(self) -> int:
        """Decide on the cached view; at most one election attempt, outside the lock."""
        with self._lock:
            mono = self._mono()
            if self._store_error is not None and self.config.on_store_error == "fail_closed":
                raise self._reject(mono, "store_error") from self._store_error
            ticket = self._admission(mono)
            if ticket is not None:
                return ticket
            if not self._election_due(mono):
                raise self._reject(mono, None)
            if self._store_error is not None:
                # fail_open while the store fails: no probe can be elected, and the
                # cool-down is over, so the breaker steps aside rather than block.
                return self._view.circuit.generation << 1
            if self._busy:
                raise self._reject(mono, None)  # another thread is at the store: no waiting
            self._busy = True
            gen = self._view.circuit.generation
        # Either way we adopt what is stored.
        self._transact(Action.ELECT, gen, mono, single_flight=True)
        with self._lock:
            mono = self._mono()
            ticket = self._admission(mono)
            if ticket is not None:
                return ticket
            raise self._reject(mono, None)

    def _roll(self, mono: float) -> None:
        """A time window's bucket ended: close it, and move the hot paths' gate."""
        window = self._window
        window.roll(mono)
        with self._lock:
            self._fresh_until = min(self._view_fresh, window.next_roll)

    def _admission(self, mono: float) -> int | None:
        circuit = self._view.circuit
        if circuit.state is CLOSED:
            return circuit.generation << 1
        if circuit.state is HALF_OPEN and self._is_prober(circuit, mono):
            probe = circuit.probe
            assert probe is not None
            if self._probes_admitted < probe.slots:
                self._probes_admitted += 1
                self._probes_running += 1
                return circuit.generation << 1 | 1
        return None

    def _is_prober(self, circuit: Circuit, mono: float) -> bool:
        probe = circuit.probe
        return (
            probe is not None
            and probe.holder == self.instance_id
            and self._probe_gen == circuit.generation
            and mono < self._probe_deadline
        )

    def _election_due(self, mono: float) -> bool:
        # The store's transaction re-checks by its own clock; this only avoids
        # a transaction per call while the cool-down obviously runs.
        return mono >= self._view.due

    def _reject(
        self, mono: float, reason: str | None, *, locked: bool = True
    ) -> CircuitOpenError:
        """Count a rejection, tell the listeners, and build the error to raise."""
        circuit = self._view.circuit
        retry_after: timedelta | None
        if reason == "store_error":
            retry_after = timedelta(seconds=max(self._view_fresh - mono, 0.0))
        else:
            due = self._view.due
            retry_after = None if due == math.inf else timedelta(seconds=max(due - mono, 0.0))
            if circuit.state is HALF_OPEN:
                reason = "half_open"
            else:
                reason = "forced_open" if circuit.forced else "open"
        self._c_rejections.add(1, self._rejection_attributes(reason))
        listeners = self._listeners
        if listeners:
            event = RejectionEvent(
                self.name, self.instance_id, circuit.state, circuit.generation,
                reason, retry_after, enforced=not self._observe,
            )
            if locked:
                self._pending.append(event)  # delivered after the lock is released
            else:
                notify(listeners, event)
        seconds = None if retry_after is None else retry_after.total_seconds()
        return _open_error(CircuitOpenError, self.name, circuit.state, seconds)
    # ------------------------------------------------------------------ outcomes

    def _is_failure(self, exc: BaseException) -> bool:
        """Whether ``exc`` counts as a failure; anything else is neutral (neither outcome)."""
        if not isinstance(exc, Exception) or isinstance(exc, CircuitOpenError):
            return False  # cancellation/exit says nothing about the downstream
        if self.config.excluded and isinstance(exc, self.config.excluded):
            return False
        predicate = self.config.failure_predicate
        if predicate is None:
            return True
        try:
            return bool(predicate(exc))
        except Exception as broken:  # noqa: BLE001  (user code: any error must be contained)
            log_failure(logger, f"failure_predicate of breaker {self.name!r} raised; "
                        "counting the call as a failure", broken, breaker=self.name)
            return True

    def _record_success(self, ticket: int) -> None:
        if not ticket & 1:
            # Lock-free: a deque append is atomic, and a success never triggers a write.
            if self._view.circuit.generation == ticket >> 1:
                self._window.success(self._mono())
            return
        try:
            gen = ticket >> 1
            with self._lock:
                mono = self._mono()
                self._finished_locked(gen)
                if gen != self._view.circuit.generation or gen != self._probe_gen:
                    return  # a verdict for an older generation changes nothing
                running = self._probes_running > 0
                if mono >= self._probe_deadline:
                    # Past probe_timeout: the store, by its own clock, records it as
                    # a failed probe ("probe_timeout") whatever the threshold.
                    action = Action.PROBE_SUCCEEDED
                else:
                    self._probe_successes += 1
                    if self._probe_successes < self.config.success_threshold:
                        return
                    action = Action.PROBE_SUCCEEDED
            # A probe's verdict is always written (never skipped for single flight).
            self._transact(action, gen, mono, probes_running=running)
        finally:
            if self._pending:
                self._flush()

    def _probe_finished(self, ticket: int) -> None:
        """A probe ended neutrally (an excluded error): it no longer runs, no verdict."""
        with self._lock:
            self._finished_locked(ticket >> 1)

    def _finished_locked(self, gen: int) -> None:
        if gen == self._probe_gen and self._probes_running > 0:
            self._probes_running -= 1

    def _record_failure(self, ticket: int, slow: bool = False, failed: bool = True) -> None:
        """A failed call (or, ``failed=False``, a slow success under a slow-call rate)."""
        try:
            gen = ticket >> 1
            with self._lock:
                mono = self._mono()
                if ticket & 1:
                    self._finished_locked(gen)
                running = self._probes_running > 0
                action, why = self._failure_locked(ticket, mono, slow, failed)
            if action is None:
                return
            change = self._transact(
                action, gen, mono, single_flight=action is Action.TRIP, probes_running=running,
                trip_reason=why,
            )
            if action is Action.TRIP:
                with self._lock:
                    self._reported(gen, mono, change)
        finally:
            if self._pending:
                self._flush()

    def _failure_locked(
        self, ticket: int, mono: float, slow: bool, failed: bool
    ) -> tuple[Action | None, str]:
        """What a failure asks of the store (``None``: nothing); claims the store for a trip."""
        gen = ticket >> 1
        circuit = self._view.circuit
        if gen != circuit.generation:
            return None, ""  # a result for an older generation never changes the state
        if ticket & 1:
            return (Action.PROBE_FAILED if gen == self._probe_gen else None), ""
        if circuit.state is not CLOSED:
            return None, ""
        if failed:
            self._window.failure(mono, slow)
        else:
            self._window.slow_success(mono)
        why = self._window.trip_reason(mono)
        if why is None or not self._trip_due(gen, mono):
            return None, ""
        self._busy = True
        return Action.TRIP, why

    def _trip_due(self, gen: int, mono: float) -> bool:
        if self._store_error is not None and mono < self._view_fresh:
            return False  # backing off a failing store; the trip is retried after cache_ttl
        if self._reported_gen == gen and mono - self._reported_mono < self.config.window:
            return False  # my quorum report is still live: nothing to add
        # Another thread at the store: the next failure retries (the window keeps it).
        return not self._busy

    def _reported(self, gen: int, mono: float, change: Change | None) -> None:
        if self._view.circuit.generation == gen and self._store_error is None:
            # Quorum pending (my report written, or already there): do not re-report
            # on every further failure; the report itself lives one window.
            self._reported_gen, self._reported_mono = gen, mono
            if change is not None and self._listeners:
                self._pending.append(
                    TripReportEvent(
                        self.name, self.instance_id, gen, len(change.after.reports),
                        self.config.open_quorum, change.after.changed_at or _EPOCH,
                    )
                )
