"""
The tracker's plumbing: configuration, the retried idempotent transaction,
trigger confirmation/release, publishing a claim, and the execution log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar, cast

from .._clock import Clock, SystemClock
from .._identity import default_owner
from .._telemetry import counter, log_failure, span
from .._validate import duration_seconds
from ..errors import (
    ConfigurationError,
    InvalidInputError,
    RetryExhaustedError,
    StoreError,
    StoreUnavailableError,
    TriggerClaimLostError,
)
from ..retry import RetryPolicy
from ..stores._protocol import Snapshot, StateStore
from ._checks import check_claim, check_options, check_owner, check_phases
from ._claims import ConfirmOutcome
from ._decide import confirm_step, execution_row, release_step, write_once
from ._events import TriggerClaim, TriggerEvent
from ._history import RunHistory
from ._ledger import CompletionLedger, ExecutionLog, ExecutionLogRow
from ._listeners import TrackerEventKind
from ._observe import Observers, check_history
from ._results import TriggerConfirmation
from ._spec import PhaseSpec, normalise_date, show, validate_name

__all__ = [
    "STORE_FAILURES",
    "Publish",
    "TrackerBase",
    "TrackerCore",
    "count_claim",
    "describe",
    "logger",
]

R = TypeVar("R")
S = TypeVar("S")
Publish = Callable[[TriggerEvent], object]
#: What the store path raises when it is down (after retries): the fallback case.
STORE_FAILURES = (StoreError, RetryExhaustedError)
logger = logging.getLogger("pipeline_reliability.completion")


def describe(exc: BaseException) -> str:
    """``"TypeName: message"`` for result fields."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a hostile __str__ must not hide the real error
        text = "<unprintable>"
    return f"{type(exc).__name__}: {text}"


class TrackerBase(Generic[S]):
    """
    What the sync and the async tracker hold alike: checked options, phases,
    owner, observers and the store budget (not public).

    ``_asynchronous`` tells the option checks which kind of store to expect.
    """

    _asynchronous: ClassVar[bool] = False

    def __init__(
        self,
        store: S,
        phases: Iterable[PhaseSpec],
        ledger: CompletionLedger | None = None,
        clock: Clock | None = None,
        *,
        execution_log: ExecutionLog | None = None,
        owner: str | None = None,
        retry: RetryPolicy | None = None,
        store_deadline: float | timedelta | None = None,
        history: RunHistory | None = None,
    ) -> None:
        check_options(
            store, phases, ledger=ledger, clock=clock, execution_log=execution_log, retry=retry,
            asynchronous=self._asynchronous,
        )  # fmt: skip
        specs = check_phases(phases)
        check_owner(owner)
        self._store = store
        self._phases: Mapping[str, PhaseSpec] = specs
        self._ledger = ledger
        self._execution_log = execution_log
        self._clock: Clock = clock or SystemClock()
        self.owner: str = owner or default_owner()
        self._observers = Observers(check_history(history), self._clock, self.owner)
        # Every tracker operation is an idempotent transaction (see _transact),
        # so retrying after a maybe-committed failure is safe.
        self._retry, self.store_deadline = _store_budget(retry, store_deadline, clock)
        self._budget_clock: Clock = self._retry.clock or SystemClock()  # the retry's time
        # An optional store operation (MemoryStore, FirestoreStore and their async
        # twins): a transaction whose first attempt is a snapshot already read.
        # Wrappers that do not offer it get the plain transaction.
        from_snapshot = getattr(store, "transact_from", None)
        self._transact_from: Any = from_snapshot if callable(from_snapshot) else None

    @property
    def phases(self) -> Mapping[str, PhaseSpec]:
        """The configured phases, by name."""
        return self._phases

    def _spec(self, phase: object) -> PhaseSpec:
        validate_name(phase, "phase")
        assert isinstance(phase, str)
        spec = self._phases.get(phase)
        if spec is None:
            raise InvalidInputError(f"unknown phase {phase!r}; configured: {sorted(self._phases)}")
        return spec

    def _days(self, dates: object) -> tuple[str, ...]:
        if isinstance(dates, str) or not isinstance(dates, Iterable):
            raise InvalidInputError("dates must be a collection of dates, not a single value")
        return tuple(dict.fromkeys(normalise_date(d) for d in dates))

    def _budget_end(self) -> float:
        """When a store budget starting now runs out (the tracker's monotonic clock)."""
        return self._budget_clock.monotonic() + self.store_deadline


class TrackerCore(TrackerBase[StateStore]):
    """Shared state and plumbing of :class:`CompletionTracker` (not public)."""

    def _transact(
        self,
        spec: PhaseSpec,
        day: str,
        decide: Callable[[dict[str, Any], Snapshot], tuple[R, bool]],
        *,
        end: float | None = None,
        first: Snapshot | None = None,
    ) -> R:
        """
        Run ``decide`` on the (phase, date) document in a retried transaction
        (within ``store_deadline``, or until ``end`` when the budget is shared).

        ``first``: a snapshot of the document just read with ``get`` and not
        changed since; when the store has ``transact_from``, the first attempt
        decides on it and commits only if the document is still at its
        version (one read fewer; on Firestore a conditional commit instead of
        a transaction). Retries after a failure read afresh.

        ``decide`` gets the document (the fresh layout when it does not exist)
        and the snapshot, changes the document in place and returns
        ``(result, write)``. Each call carries a write id stored in the
        document (``ops``) with its write: when a retry follows a lost
        response, the retry finds its own write id and returns the result of
        the attempt that committed, instead of mistaking its own write for
        someone else's (so a completion whose response was lost is still
        reported as counted).
        """
        fn = write_once(spec.name, day, decide)

        pending = [first] if first is not None and self._transact_from is not None else []

        def transact(timeout: float) -> R:
            if pending:  # only the first call: a retry must not decide on old data
                return cast("R", self._transact_from(pending.pop(), fn, timeout=timeout))
            return self._store.transact(spec.collection, day, fn, timeout=timeout)

        return self._store_op(transact, end=end)

    def _read(self, spec: PhaseSpec, day: str) -> Snapshot:
        """Read the (phase, date) document within ``store_deadline``."""
        return self._store_op(lambda timeout: self._store.get(spec.collection, day,
                                                              timeout=timeout))

    def _store_op(self, op: Callable[[float], R], *, end: float | None = None) -> R:
        """
        Run a store operation under the retry policy, all of it within
        ``store_deadline`` (or until ``end``, a budget shared with an earlier
        operation): each attempt gets the time left as its own ``timeout``, so
        a call in flight cannot outlive the budget (a hanging store costs
        ``store_deadline``, not ``store_deadline`` plus a call).
        """
        policy = self._retry
        if end is None:
            end = self._budget_end()
        elif self.store_deadline - (end - self._budget_clock.monotonic()) > _SHARED_SLACK:
            # Part of the budget is spent (a failed read): the retries' sleeps
            # must end by ``end`` too, not a whole store_deadline from now.
            policy = policy.with_(deadline=max(end - self._budget_clock.monotonic(), 1e-6))

        def attempt() -> R:
            left = end - self._budget_clock.monotonic()
            if left <= 0:
                raise StoreUnavailableError(
                    f"the tracker's store_deadline ({self.store_deadline:g} s) ran out"
                )
            return op(left)

        return policy.call(attempt)

    def confirm_trigger(self, claim: TriggerClaim) -> TriggerConfirmation:
        """
        Mark ``claim``'s trigger confirmed: its event was published.

        Idempotent. Allowed while no other claim has replaced this one, even
        after the lease expired (confirming then is what prevents a second
        publish). Writes an execution-log row when one is configured; a failed
        row is logged with its traceback, counted and returned in
        ``execution_log_error``, and leaves the trigger confirmed.

        Raises:
            TriggerClaimLostError: another claim took the trigger over (that
                claim's holder publishes the same ``trigger_id`` and confirms).
            StoreError, RetryExhaustedError: the store failed; nothing is
                confirmed and the lease will expire.
        """
        spec = self._spec(check_claim(claim).phase)
        with span("tracker", "confirm_trigger", lambda: _claim_attrs(claim)):
            outcome, now, first = self._transact(spec, claim.date, confirm_step(claim))
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
                logged, error = self._log_execution(claim, now, first)
            return TriggerConfirmation(claim, now, newly, logged, error)

    def release_trigger(self, claim: TriggerClaim, error: BaseException | str) -> bool:
        """
        Record that publishing ``claim`` failed and free the trigger at once,
        so the next delivery or sweep claims it again (``attempt + 1``).

        Returns:
            ``False`` when there was nothing to release (the claim was
            confirmed, already released or taken over).

        Raises:
            StoreError, RetryExhaustedError: the store failed; the lease
                then expires on its own.
        """
        spec = self._spec(check_claim(claim).phase)
        given: object = error
        if not isinstance(given, str | BaseException):
            raise InvalidInputError(f"error must be an exception or a string, got {show(error)}")
        text = error if isinstance(error, str) else describe(error)
        with span("tracker", "release_trigger", lambda: _claim_attrs(claim)):
            released: bool = self._transact(spec, claim.date, release_step(claim, text))
            if released:
                _triggers(claim, "released")
                self._observers.trigger(TrackerEventKind.TRIGGER_RELEASED, claim, text)
                logger.warning("trigger released: %s", text, extra=_extra(claim))
            return released

    def _publish_claim(
        self, claim: TriggerClaim, publish: Publish
    ) -> tuple[TriggerConfirmation | None, str | None]:
        """
        Publish ``claim``'s event, then confirm it.

        A publish failure releases the claim and re-raises. A failure to
        confirm after a successful publish does not raise: the event is out,
        the claim expires and the sweep re-publishes the same ``trigger_id``;
        it is logged and returned as the second element.
        """
        with span("tracker", "publish", lambda: _claim_attrs(claim)):
            try:
                publish(claim.event())
            except Exception as exc:
                _triggers(claim, "publish_failed")
                log_failure(logger, "trigger publish failed", exc, **_fields(claim))
                self._release_after(claim, exc)
                raise
            _triggers(claim, "published")
            self._observers.trigger(TrackerEventKind.TRIGGER_PUBLISHED, claim)
            try:
                return self.confirm_trigger(claim), None
            except TriggerClaimLostError as exc:
                logger.warning("trigger published, but %s", exc, extra=_extra(claim))
                return None, describe(exc)
            except STORE_FAILURES as exc:
                _triggers(claim, "confirm_failed")
                log_failure(logger, "trigger published but not confirmed", exc, **_fields(claim))
                return None, describe(exc)

    def _release_after(self, claim: TriggerClaim, cause: Exception) -> None:
        try:
            self.release_trigger(claim, cause)
        except STORE_FAILURES as exc:
            # The publish error is what the caller must see; the claim's lease
            # expires on its own, so the trigger is still finished later.
            log_failure(logger, "could not release trigger claim", exc, **_fields(claim))
            cause.add_note(f"release_trigger also failed ({describe(exc)}); the lease will expire")

    def _log_execution(
        self, claim: TriggerClaim, now: datetime, first: datetime | None
    ) -> tuple[bool, str | None]:
        if self._execution_log is None:
            return False, None
        return self._write_execution_row(execution_row(claim, now, first), _fields(claim))

    def _write_execution_row(
        self, row: ExecutionLogRow, fields: Mapping[str, Any]
    ) -> tuple[bool, str | None]:
        assert self._execution_log is not None
        try:
            self._execution_log.write(row)
        except Exception as exc:  # noqa: BLE001 - any sink failure is reported in the result
            counter("tracker.execution_log_failures", "Execution-log rows not written").add(
                1, {"phase": row.phase_name}
            )
            log_failure(logger, "execution log row not written", exc, **fields)
            return False, describe(exc)
        return True, None


#: The default time budget of one store operation of the tracker, retries included.
DEFAULT_STORE_DEADLINE = 10.0


#: A shared budget less than this spent keeps the tracker's own policy (building
#: a shorter one costs more than the millisecond it would save).
_SHARED_SLACK = 1e-3


def _store_budget(
    retry: object, store_deadline: object, clock: Clock | None
) -> tuple[RetryPolicy, float]:
    """
    The retry policy of store operations, its deadline capped by ``store_deadline``.

    The degraded path's latency is this deadline (every store call gets the
    time left as its ``timeout``) plus the ledger's deadline
    (docs/how-to/completion.md states the sum).
    """
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ConfigurationError(f"retry must be a RetryPolicy, got {retry!r:.80}")
    if store_deadline is None:
        given = None if retry is None else retry.deadline_seconds
        budget = DEFAULT_STORE_DEADLINE if given is None else given
    else:
        budget = duration_seconds(store_deadline, "store_deadline")
    policy = retry or RetryPolicy(
        attempts=4, deadline=budget, initial=0.1, maximum=2.0, clock=clock
    )
    if policy.deadline_seconds is None or policy.deadline_seconds > budget:
        policy = policy.with_(deadline=budget)
    return policy, budget


def _fields(claim: TriggerClaim) -> dict[str, Any]:
    return {
        "phase": claim.phase,
        "date": claim.date,
        "trigger_id": claim.trigger_id,
        "attempt": claim.attempt,
        "owner": claim.owner,
        "reason": claim.reason,
    }


def _extra(claim: TriggerClaim) -> dict[str, Any]:
    return {"pipeline_reliability": _fields(claim)}


def _claim_attrs(claim: TriggerClaim) -> dict[str, Any]:
    return _fields(claim)


def count_claim(claim: TriggerClaim) -> None:
    """Count a claim taken (``claimed``) or taken over / re-claimed (``reclaimed``)."""
    _triggers(claim, "claimed" if claim.attempt == 1 else "reclaimed")


def _triggers(claim: TriggerClaim, outcome: str) -> None:
    counter("tracker.triggers", "Trigger claims, confirmations and failures").add(
        1, {"phase": claim.phase, "outcome": outcome, "reason": claim.reason}
    )
