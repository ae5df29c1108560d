"""
The async tracker's plumbing: configuration, the retried idempotent
transaction, trigger confirmation/release, publishing, and the sync sinks.

The decisions are ``_decide``'s, the very functions ``TrackerCore`` runs; only
the waiting differs: store operations are awaited on an :class:`AsyncStateStore`.

The sinks (fallback ledger, execution log, run history) and the phase gates
are sync objects (BigQuery has no official async client). Their calls are the
one place this tracker uses a thread: :func:`offload` runs each in
``asyncio.to_thread`` under :data:`SINK_DEADLINE`, so a slow sink never blocks
the event loop and never holds the caller longer than the deadline.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from .._telemetry import counter, log_failure, span
from ..errors import InvalidInputError, StoreUnavailableError, TriggerClaimLostError
from ..stores._protocol import AsyncStateStore, Snapshot
from ._checks import check_claim
from ._claims import ConfirmOutcome
from ._core import (
    _SHARED_SLACK,
    STORE_FAILURES,
    TrackerBase,
    _claim_attrs,
    _extra,
    _fields,
    _triggers,
    describe,
    logger,
)
from ._decide import Decide, confirm_step, execution_row, release_step, write_once
from ._doc import Completion
from ._events import TriggerClaim, TriggerEvent
from ._gates import GateVerdict, evaluate_gates
from ._history import RunHistory
from ._ledger import ExecutionLogRow
from ._listeners import TrackerEventKind, TrackerListener
from ._results import CompletionResult, TriggerConfirmation
from ._spec import PhaseSpec, show

__all__ = ["SINK_DEADLINE", "AsyncPublish", "AsyncTrackerCore", "offload"]

R = TypeVar("R")
#: A sync callable or a coroutine function taking the :class:`TriggerEvent`.
AsyncPublish = Callable[[TriggerEvent], object]

#: Seconds one call of a sync sink (ledger, execution log, run history) or of
#: the phase's gates may hold an async caller. The thread itself cannot be
#: stopped: a call that outlives this finishes in the background (a ledger row
#: written late is still replayed once: replay is idempotent).
SINK_DEADLINE = 30.0


async def offload(fn: Callable[..., R], *args: Any) -> R:
    """
    Run the sync sink call ``fn(*args)`` in a thread, within :data:`SINK_DEADLINE`.

    The one place the async tracker uses a thread, and why: the sinks wrap
    BigQuery, whose client is sync only; running them on the loop would stall
    every other task for the length of a network call.

    Raises:
        TimeoutError: the call did not finish in time (the caller treats it
            as that sink's failure).
    """
    import asyncio  # only async callers get here, and they have it loaded already

    return await asyncio.wait_for(asyncio.to_thread(fn, *args), SINK_DEADLINE)


class AsyncTrackerCore(TrackerBase[AsyncStateStore]):
    """Shared state and plumbing of :class:`AsyncCompletionTracker` (not public)."""

    _asynchronous = True

    @property
    def history(self) -> RunHistory | None:
        """The run history this tracker sends a row per completion report to, if any."""
        return self._observers.history

    def add_listener(self, listener: TrackerListener) -> None:
        """
        Call ``listener(event)`` with a :class:`TrackerEvent` for everything the tracker does.

        Listeners are plain callables, called on the event loop after the
        store decided; one that raises is logged and skipped.
        """
        self._observers.add(listener)

    def remove_listener(self, listener: TrackerListener) -> None:
        """Stop calling ``listener`` (no error if it was not added)."""
        self._observers.remove(listener)

    async def _transact(
        self,
        spec: PhaseSpec,
        day: str,
        decide: Decide,
        *,
        end: float | None = None,
        first: Snapshot | None = None,
    ) -> Any:
        """``TrackerCore._transact``, awaited: ``decide`` in a retried idempotent transaction."""
        fn = write_once(spec.name, day, decide)
        pending = [first] if first is not None and self._transact_from is not None else []

        async def transact(timeout: float) -> Any:
            if pending:  # only the first call: a retry must not decide on old data
                return await self._transact_from(pending.pop(), fn, timeout=timeout)
            return await self._store.transact(spec.collection, day, fn, timeout=timeout)

        return await self._store_op(transact, end=end)

    async def _read(self, spec: PhaseSpec, day: str) -> Snapshot:
        """Read the (phase, date) document within ``store_deadline``."""

        async def get(timeout: float) -> Snapshot:
            return await self._store.get(spec.collection, day, timeout=timeout)

        return await self._store_op(get)

    async def _store_op(
        self, op: Callable[[float], Awaitable[R]], *, end: float | None = None
    ) -> R:
        """``TrackerCore._store_op``, awaited: retried, within ``store_deadline`` or ``end``."""
        policy = self._retry
        if end is None:
            end = self._budget_end()
        elif self.store_deadline - (end - self._budget_clock.monotonic()) > _SHARED_SLACK:
            policy = policy.with_(deadline=max(end - self._budget_clock.monotonic(), 1e-6))

        async def attempt() -> R:
            left = end - self._budget_clock.monotonic()
            if left <= 0:
                raise StoreUnavailableError(
                    f"the tracker's store_deadline ({self.store_deadline:g} s) ran out"
                )
            return await op(left)

        return await policy.acall(attempt)

    async def _gates(self, spec: PhaseSpec, day: str) -> GateVerdict:
        """Ask the phase's (sync) gates in a thread; a gate that hangs counts as closed."""
        try:
            return await offload(evaluate_gates, spec.gates, spec.name, day)
        except TimeoutError as exc:
            log_failure(logger, "gates did not answer; closed", exc, phase=spec.name, date=day)
            counter("tracker.gate_errors", "Gates that raised (counted as closed)").add(
                1, {"phase": spec.name}
            )
            return GateVerdict(False, f"gates did not answer within {SINK_DEADLINE:g} s")

    async def _observe_completion(
        self, c: Completion, result: CompletionResult, *, backfill: bool, replayed: bool = False
    ) -> None:
        """``Observers.completion`` with the run history's ``record`` offloaded."""
        observers = self._observers
        outcome = observers.notify_completion(c, result, backfill=backfill, replayed=replayed)
        history = observers.history
        if history is None:
            return
        try:
            row = observers.history_row(c, result, outcome, backfill=backfill, replayed=replayed)
            await offload(history.record, row)
        except Exception as exc:  # noqa: BLE001 - history is observability: it never fails a call
            observers.history_failed(result, c, exc)

    async def confirm_trigger(self, claim: TriggerClaim) -> TriggerConfirmation:
        """
        Mark ``claim``'s trigger confirmed (see :meth:`CompletionTracker.confirm_trigger`).

        Raises:
            TriggerClaimLostError: another claim took the trigger over.
            StoreError, RetryExhaustedError: the store failed; nothing is confirmed.
        """
        spec = self._spec(check_claim(claim).phase)
        with span("tracker", "confirm_trigger", lambda: _claim_attrs(claim)):
            outcome, now, first = await self._transact(spec, claim.date, confirm_step(claim))
            if outcome is ConfirmOutcome.LOST:
                _triggers(claim, "lost")
                self._observers.trigger(TrackerEventKind.TRIGGER_LOST, claim)
                raise TriggerClaimLostError(
                    f"trigger {claim.trigger_id} attempt {claim.attempt} of {claim.owner} "
                    "was taken over by another claim"
                )
            newly = outcome is ConfirmOutcome.CONFIRMED
            logged, error = False, None
            if newly:
                _triggers(claim, "confirmed")
                self._observers.trigger(TrackerEventKind.TRIGGER_CONFIRMED, claim)
                logger.info("trigger confirmed", extra=_extra(claim))
                logged, error = await self._log_execution(claim, now, first)
            return TriggerConfirmation(claim, now, newly, logged, error)

    async def release_trigger(self, claim: TriggerClaim, error: BaseException | str) -> bool:
        """
        Free ``claim``'s trigger after a failed publish (see
        :meth:`CompletionTracker.release_trigger`).

        Raises:
            StoreError, RetryExhaustedError: the store failed; the lease expires on its own.
        """
        spec = self._spec(check_claim(claim).phase)
        given: object = error
        if not isinstance(given, str | BaseException):
            raise InvalidInputError(f"error must be an exception or a string, got {show(error)}")
        text = error if isinstance(error, str) else describe(error)
        with span("tracker", "release_trigger", lambda: _claim_attrs(claim)):
            released: bool = await self._transact(spec, claim.date, release_step(claim, text))
            if released:
                _triggers(claim, "released")
                self._observers.trigger(TrackerEventKind.TRIGGER_RELEASED, claim, text)
                logger.warning("trigger released: %s", text, extra=_extra(claim))
            return released

    async def _publish_claim(
        self, claim: TriggerClaim, publish: AsyncPublish
    ) -> tuple[TriggerConfirmation | None, str | None]:
        """``TrackerCore._publish_claim``; an awaitable ``publish`` returns is awaited."""
        with span("tracker", "publish", lambda: _claim_attrs(claim)):
            try:
                sent = publish(claim.event())
                if inspect.isawaitable(sent):
                    await sent
            except Exception as exc:
                _triggers(claim, "publish_failed")
                log_failure(logger, "trigger publish failed", exc, **_fields(claim))
                await self._release_after(claim, exc)
                raise
            _triggers(claim, "published")
            self._observers.trigger(TrackerEventKind.TRIGGER_PUBLISHED, claim)
            try:
                return await self.confirm_trigger(claim), None
            except TriggerClaimLostError as exc:
                logger.warning("trigger published, but %s", exc, extra=_extra(claim))
                return None, describe(exc)
            except STORE_FAILURES as exc:
                _triggers(claim, "confirm_failed")
                log_failure(logger, "trigger published but not confirmed", exc, **_fields(claim))
                return None, describe(exc)

    async def _release_after(self, claim: TriggerClaim, cause: Exception) -> None:
        try:
            await self.release_trigger(claim, cause)
        except STORE_FAILURES as exc:
            log_failure(logger, "could not release trigger claim", exc, **_fields(claim))
            cause.add_note(f"release_trigger also failed ({describe(exc)}); the lease will expire")

    async def _log_execution(
        self, claim: TriggerClaim, now: datetime, first: datetime | None
    ) -> tuple[bool, str | None]:
        if self._execution_log is None:
            return False, None
        return await self._write_execution_row(execution_row(claim, now, first), _fields(claim))

    async def _write_execution_row(
        self, row: ExecutionLogRow, fields: Mapping[str, Any]
    ) -> tuple[bool, str | None]:
        assert self._execution_log is not None
        try:
            await offload(self._execution_log.write, row)
        except Exception as exc:  # noqa: BLE001 - any sink failure is reported in the result
            counter("tracker.execution_log_failures", "Execution-log rows not written").add(
                1, {"phase": row.phase_name}
            )
            log_failure(logger, "execution log row not written", exc, **fields)
            return False, describe(exc)
        return True, None
