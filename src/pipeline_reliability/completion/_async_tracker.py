"""``AsyncCompletionTracker``: the asyncio twin of ``CompletionTracker``."""

from __future__ import annotations

import copy
import dataclasses
import secrets
from collections.abc import Iterable, Mapping
from datetime import date as date_type
from datetime import datetime

from .._telemetry import log_failure, span
from ..errors import ConfigurationError, InvalidInputError
from ._async_core import AsyncPublish
from ._async_operate import AsyncOperatorTracker
from ._checks import check_publish
from ._core import STORE_FAILURES, count_claim, describe, logger
from ._decide import gate_due, reconcile_step, sweep_step
from ._doc import done_set, ensure_doc
from ._expected import resolve
from ._gates import GateVerdict
from ._outcomes import observe_sweep
from ._results import ReconcileReport, SweepOutcome, SweepReport
from ._spec import PhaseSpec, normalise_date, show
from ._sweep import decide_sweep
from ._tracker import Evidence, _has_output

__all__ = ["AsyncCompletionTracker"]


class AsyncCompletionTracker(AsyncOperatorTracker):
    """
    The fan-in barrier of :class:`CompletionTracker`, for asyncio code.

    The same constructor options, methods, results, events, telemetry and
    errors as :class:`CompletionTracker`, with every store operation awaited
    on an :class:`~pipeline_reliability.stores.AsyncStateStore`
    (``AsyncMemoryStore``, ``AsyncFirestoreStore``). Both trackers run the
    same decision functions inside the same transactions, so a sync and an
    async tracker can serve the same dates side by side (a mixed fleet)::

        tracker = AsyncCompletionTracker(AsyncMemoryStore(), [PhaseSpec("phase3", {"a", "b"})])
        result = await tracker.record_and_trigger(
            "phase3", "2026-01-31", "a", execution_id="r1", publish=publish_async
        )

    ``publish`` may be a plain callable or a coroutine function (its
    awaitable is awaited). Listeners are plain callables, called on the loop.

    The fallback ledger, execution log, run history and gates are sync
    objects (BigQuery has no official async client): each of their calls is
    run with ``asyncio.to_thread`` and bounded by ``SINK_DEADLINE`` (30 s),
    the only threads this tracker uses. A ledger append that times out
    counts as a failed ledger write (``CompletionNotRecordedError``); a gate
    that times out counts as closed.

    Args: see :class:`CompletionTracker` (``store`` is an ``AsyncStateStore``).

    Raises:
        ConfigurationError: as :class:`CompletionTracker`, and a sync store.

    .. versionadded:: 0.3.0
    """

    async def sweep(
        self,
        phase: str,
        dates: Iterable[str | date_type],
        now: datetime | None = None,
        *,
        dry_run: bool = False,
    ) -> SweepReport:
        """Evaluate deadlines and stale claims of ``dates`` (:meth:`CompletionTracker.sweep`)."""
        spec = self._spec(phase)
        days = self._days(dates)
        when: object = now
        if when is not None and not (isinstance(when, datetime) and when.tzinfo is not None):
            raise InvalidInputError(f"now must be a timezone-aware datetime, got {show(now)}")
        flag: object = dry_run
        if not isinstance(flag, bool):
            raise InvalidInputError(f"dry_run must be a bool, got {dry_run!r}")
        attrs = {"phase": spec.name, "dates": len(days), "dry_run": dry_run}
        with span("tracker", "sweep", attrs):
            outcomes = [await self._sweep_one(spec, day, now, dry_run=dry_run) for day in days]
        return SweepReport(spec.name, tuple(outcomes), dry_run=dry_run)

    async def sweep_and_trigger(
        self,
        phase: str,
        dates: Iterable[str | date_type],
        publish: AsyncPublish,
        now: datetime | None = None,
    ) -> SweepReport:
        """:meth:`sweep`, then publish and confirm every claim it took."""
        check_publish(publish)
        report = await self.sweep(phase, dates, now)
        published, errors = await self._publish_all(report.claims, publish)
        return dataclasses.replace(report, published=published, publish_errors=errors)

    async def reconcile(
        self, phase: str, date: str | date_type, evidence: Evidence, *, trigger: bool = True
    ) -> ReconcileReport:
        """
        Record as ``reconciled`` every missing processor whose output exists
        (see :meth:`CompletionTracker.reconcile`). ``evidence`` is a mapping or
        a plain callable, asked on the loop.
        """
        spec = self._spec(phase)
        day = normalise_date(date)
        flag: object = trigger
        if not isinstance(flag, bool):
            raise InvalidInputError(f"trigger must be a bool, got {show(trigger)}")
        given: object = evidence
        if not (isinstance(given, Mapping) or callable(given)):
            raise InvalidInputError("evidence must be a mapping or a callable")
        with span("tracker", "reconcile", {"phase": spec.name, "date": day}):
            snap = await self._read(spec, day)
            rspec = resolve(snap.data, spec, day)
            checked = rspec.expected - done_set(snap.data, rspec)
            found = frozenset(p for p in sorted(checked) if _has_output(evidence, p))
            run = f"reconcile-{self._clock.now():%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
            reported_at = self._clock.now()
            verdict = None
            if trigger and spec.gates:
                verdict = await self._gates(spec, day)
            decide = reconcile_step(
                spec, day, found, run=run, reported_at=reported_at, owner=self.owner,
                trigger=trigger, verdict=verdict,
            )  # fmt: skip
            recorded, done, claim, expected = await self._transact(spec, day, decide)
            if claim is not None:
                count_claim(claim)
                self._observers.claim(claim)
            return ReconcileReport(
                spec.name, day, checked, recorded, expected - done, done, len(done), claim
            )

    async def reconcile_and_trigger(
        self, phase: str, date: str | date_type, evidence: Evidence, publish: AsyncPublish
    ) -> ReconcileReport:
        """:meth:`reconcile`, then publish and confirm its claim, if any."""
        check_publish(publish)
        report = await self.reconcile(phase, date, evidence)
        if report.claim is None:
            return report
        confirmation, error = await self._publish_claim(report.claim, publish)
        return dataclasses.replace(report, confirmation=confirmation, publish_error=error)

    async def _sweep_one(
        self, spec: PhaseSpec, day: str, now: datetime | None, *, dry_run: bool = False
    ) -> SweepOutcome:
        fields = {"phase": spec.name, "date": day}
        outcome: SweepOutcome
        with span("tracker", "sweep_date", {**fields, "dry_run": dry_run}):
            try:
                gate: GateVerdict | None = None
                if spec.gates or dry_run:
                    # Gates do I/O: asked on a read, outside any transaction.
                    snap = await self._read(spec, day)
                    if gate_due(spec, day, snap, now):
                        gate = await self._gates(spec, day)
                if dry_run:
                    doc = ensure_doc(copy.deepcopy(snap.data), spec.name, day)
                    predicted = decide_sweep(
                        doc, spec, day, store_now=snap.now, judged_now=now or snap.now,
                        owner=self.owner, gate=gate,
                    ).outcome  # fmt: skip
                    return dataclasses.replace(predicted, claim=None)
                decide = sweep_step(spec, day, now, owner=self.owner, gate=gate)
                outcome, row = await self._transact(spec, day, decide)
            except STORE_FAILURES as exc:
                log_failure(logger, "sweep could not check a date", exc, **fields)
                return SweepOutcome(day, "error", error=describe(exc))
            except ConfigurationError as exc:  # the schedule failed for this date
                log_failure(logger, "sweep could not resolve a date's schedule", exc, **fields)
                return SweepOutcome(day, "error", error=describe(exc))
            observe_sweep(self._observers, spec.name, day, outcome, newly=row is not None)
            if row is not None:
                logger.warning(
                    "date overdue without a trigger; missing %s", sorted(outcome.missing),
                    extra={"pipeline_reliability": fields},
                )  # fmt: skip
                if self._execution_log is not None:
                    _, error = await self._write_execution_row(row, fields)
                    outcome = dataclasses.replace(outcome, execution_log_error=error)
            return outcome
