"""
Operator actions and ledger replay from asyncio: ``OperatorTracker`` and
``ReplayingTracker``'s steps, awaited, on the same decisions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import date as date_type

from .._telemetry import counter, span
from ..errors import ConfigurationError, InvalidInputError
from ._async_core import AsyncPublish, offload
from ._async_record import AsyncRecordingTracker
from ._checks import check_publish
from ._claims import FINAL
from ._core import count_claim, describe, logger
from ._decide import rearm_step, set_expected_step
from ._decide_record import completion_of_row
from ._doc import Completion
from ._events import TriggerClaim
from ._ledger import LedgerRow
from ._listeners import TrackerEventKind
from ._operate import _names
from ._outcomes import count_result
from ._replay import _quarantine
from ._results import PhaseStatus, QuarantinedRow, ReplayReport, TriggerConfirmation
from ._spec import PhaseSpec, normalise_date, show, validate_text

__all__ = ["AsyncOperatorTracker"]


class AsyncOperatorTracker(AsyncRecordingTracker):
    """``rearm_trigger``, ``set_expected``, ``replay_ledger`` and their ``*_and_trigger``."""

    async def rearm_trigger(
        self, phase: str, date: str | date_type, reason: str, *, by: str | None = None
    ) -> TriggerClaim:
        """
        Claim a new trigger for a settled date (see :meth:`CompletionTracker.rearm_trigger`).

        Raises:
            InvalidInputError: bad arguments, or nothing to rearm.
            StoreError, RetryExhaustedError: the store failed; nothing changed.
        """
        spec = self._spec(phase)
        day = normalise_date(date)
        why = str(validate_text(reason, "reason"))
        who = str(validate_text(self.owner if by is None else by, "by"))
        with span("tracker", "rearm_trigger", {"phase": spec.name, "date": day}):
            decide = rearm_step(spec, day, owner=self.owner, by=who, reason=why)
            result = await self._transact(spec, day, decide)
            if not isinstance(result, TriggerClaim):
                raise InvalidInputError(
                    f"{spec.name} {day}: nothing to rearm, the trigger is {result!r} "
                    f"(only a {' or '.join(sorted(FINAL))} trigger can be rearmed)"
                )
            count_claim(result)
            self._observers.claim(result)
            logger.warning(
                "trigger rearmed by %s: %s", who, why,
                extra={"pipeline_reliability": {"phase": spec.name, "date": day,
                                                "attempt": result.attempt}},
            )  # fmt: skip
            return result

    async def rearm_and_trigger(
        self,
        phase: str,
        date: str | date_type,
        reason: str,
        publish: AsyncPublish,
        *,
        by: str | None = None,
    ) -> TriggerConfirmation | None:
        """:meth:`rearm_trigger`, then ``publish`` its event (awaited if async) and confirm it."""
        check_publish(publish)
        claim = await self.rearm_trigger(phase, date, reason, by=by)
        confirmation, _ = await self._publish_claim(claim, publish)
        return confirmation

    async def set_expected(
        self,
        phase: str,
        date: str | date_type,
        expected: Iterable[str],
        *,
        reason: str,
        by: str | None = None,
    ) -> PhaseStatus:
        """Change the expected set fixed for one date (:meth:`CompletionTracker.set_expected`)."""
        spec = self._spec(phase)
        day = normalise_date(date)
        names = _names(expected)
        why = str(validate_text(reason, "reason"))
        who = str(validate_text(self.owner if by is None else by, "by"))
        with span("tracker", "set_expected", {"phase": spec.name, "date": day}):
            decide = set_expected_step(spec, day, names, by=who, reason=why)
            await self._transact(spec, day, decide)
            logger.warning(
                "expected set of %s %s changed by %s: %s", spec.name, day, who, why,
                extra={"pipeline_reliability": {"phase": spec.name, "date": day}},
            )  # fmt: skip
        return await self.status(spec.name, day)

    async def replay_ledger(
        self, phase: str, dates: Iterable[str | date_type], *, trigger: bool = True
    ) -> ReplayReport:
        """
        Bring the store to the ledger's state for ``dates`` (see
        :meth:`CompletionTracker.replay_ledger`); the ledger is read in a thread.

        Raises:
            ConfigurationError: no ledger is configured.
            StoreError, RetryExhaustedError: the store is still failing.
        """
        spec = self._spec(phase)
        days = self._days(dates)
        flag: object = trigger
        if not isinstance(flag, bool):
            raise InvalidInputError(f"trigger must be a bool, got {show(trigger)}")
        if self._ledger is None:
            raise ConfigurationError("replay_ledger needs a tracker with a ledger")
        with span("tracker", "replay_ledger", {"phase": spec.name, "dates": len(days)}):
            rows = await offload(self._ledger.read, spec.name, days)
            valid: list[tuple[LedgerRow, Completion]] = []
            quarantined: list[QuarantinedRow] = []
            for row in rows:
                try:
                    valid.append((row, self._from_row(spec, row)))
                except InvalidInputError as exc:
                    quarantined.append(_quarantine(spec, row, exc))
            applied = duplicates = 0
            claims: dict[str, TriggerClaim] = {}
            for row, completion in sorted(valid, key=lambda rc: rc[0].event_time):
                try:
                    result = await self._record(spec, row.date, completion, trigger=trigger)
                except InvalidInputError as exc:  # the store refuses what the row holds
                    quarantined.append(_quarantine(spec, row, exc))
                    continue
                count_result(result)
                counter("tracker.replayed", "Ledger rows replay took into the store").add(
                    1, {"phase": spec.name, "outcome": "duplicate" if result.duplicate else
                        "stale" if result.stale else "applied"}
                )  # fmt: skip
                await self._observe_completion(
                    completion, result, backfill=not trigger, replayed=True
                )
                if result.duplicate or result.stale:
                    duplicates += 1
                else:
                    applied += 1
                if result.trigger is not None:
                    claims[row.date] = result.trigger
            for q in quarantined:
                self._observers.emit(
                    TrackerEventKind.LEDGER_QUARANTINED, spec.name, q.date,
                    processor=q.processor, execution_id=q.execution_id, error=q.reason,
                )  # fmt: skip
            return ReplayReport(
                spec.name, days, len(rows), applied, duplicates, tuple(claims.values()),
                quarantined=tuple(quarantined),
            )  # fmt: skip

    async def replay_and_trigger(
        self, phase: str, dates: Iterable[str | date_type], publish: AsyncPublish
    ) -> ReplayReport:
        """:meth:`replay_ledger`, then publish and confirm the claims it took."""
        check_publish(publish)
        report = await self.replay_ledger(phase, dates)
        published, errors = await self._publish_all(report.claims, publish)
        return dataclasses.replace(report, published=published, publish_errors=errors)

    def _from_row(self, spec: PhaseSpec, row: LedgerRow) -> Completion:
        return completion_of_row(spec, self._clock, row)

    async def _publish_all(
        self, claims: Sequence[TriggerClaim], publish: AsyncPublish
    ) -> tuple[tuple[TriggerConfirmation, ...], dict[str, str]]:
        published: list[TriggerConfirmation] = []
        errors: dict[str, str] = {}
        for claim in claims:
            try:
                confirmation, error = await self._publish_claim(claim, publish)
            except Exception as exc:  # noqa: BLE001 - released and logged; reported per date
                errors[claim.date] = describe(exc)
                continue
            if confirmation is not None:
                published.append(confirmation)
            if error is not None:
                errors[claim.date] = error
        return tuple(published), errors
