"""Replaying the fallback ledger into the store (DESIGN F2), and publishing what it claims."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import date as date_type

from .._telemetry import counter, span
from ..errors import ConfigurationError, InvalidInputError
from ._checks import check_publish
from ._core import Publish, describe, logger
from ._decide_record import completion_of_row
from ._doc import Completion
from ._events import TriggerClaim
from ._ledger import LedgerRow
from ._listeners import TrackerEventKind
from ._operate import OperatorTracker
from ._outcomes import count_result
from ._results import QuarantinedRow, ReplayReport, TriggerConfirmation
from ._spec import PhaseSpec, show

__all__ = ["ReplayingTracker"]


class ReplayingTracker(OperatorTracker):
    """``replay_ledger`` and ``replay_and_trigger`` (not public)."""

    def replay_ledger(
        self, phase: str, dates: Iterable[str | date_type], *, trigger: bool = True
    ) -> ReplayReport:
        """
        Bring the store to the ledger's state for ``dates`` (DESIGN F2).

        ``trigger=False`` replays as a backfill: nothing is claimed, and a
        date the replay completes is settled as ``skipped`` (``backfill``).

        Every ledger row is recorded as the completion it stands for, with its
        original report time, so deduplication makes replay idempotent (a
        second replay applies nothing) and an older run never overwrites a
        newer one. Claims for dates that replay completes are returned.

        A row that can never be applied (a field no store can hold, e.g. a
        ``record_count`` above int64, as older versions could write) is
        quarantined: skipped, listed in ``quarantined`` with the reason,
        logged at ERROR and counted; the other rows of its date still replay.

        Raises:
            ConfigurationError: no ledger is configured.
            StoreError, RetryExhaustedError: the store is still failing.

        .. versionadded:: 0.1.0
        """
        spec = self._spec(phase)
        days = self._days(dates)
        flag: object = trigger
        if not isinstance(flag, bool):
            raise InvalidInputError(f"trigger must be a bool, got {show(trigger)}")
        if self._ledger is None:
            raise ConfigurationError("replay_ledger needs a tracker with a ledger")
        with span("tracker", "replay_ledger", {"phase": spec.name, "dates": len(days)}):
            rows = self._ledger.read(spec.name, days)
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
                    result = self._record(spec, row.date, completion, trigger=trigger)
                except InvalidInputError as exc:  # the store refuses what the row holds
                    quarantined.append(_quarantine(spec, row, exc))
                    continue
                count_result(result)
                counter("tracker.replayed", "Ledger rows replay took into the store").add(
                    1, {"phase": spec.name, "outcome": "duplicate" if result.duplicate else
                        "stale" if result.stale else "applied"}
                )
                self._observers.completion(completion, result, backfill=not trigger, replayed=True)
                if result.duplicate or result.stale:  # stale: changed nothing either
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
                spec.name,
                days,
                len(rows),
                applied,
                duplicates,
                tuple(claims.values()),
                quarantined=tuple(quarantined),
            )

    def replay_and_trigger(
        self, phase: str, dates: Iterable[str | date_type], publish: Publish
    ) -> ReplayReport:
        """:meth:`replay_ledger`, then publish and confirm the claims it took.

        .. versionadded:: 0.1.0
        """
        check_publish(publish)
        report = self.replay_ledger(phase, dates)
        published, errors = self._publish_all(report.claims, publish)
        return dataclasses.replace(report, published=published, publish_errors=errors)

    def _from_row(self, spec: PhaseSpec, row: LedgerRow) -> Completion:
        return completion_of_row(spec, self._clock, row)

    def _publish_all(
        self, claims: Sequence[TriggerClaim], publish: Publish
    ) -> tuple[tuple[TriggerConfirmation, ...], dict[str, str]]:
        published: list[TriggerConfirmation] = []
        errors: dict[str, str] = {}
        for claim in claims:
            try:
                confirmation, error = self._publish_claim(claim, publish)
            except Exception as exc:  # noqa: BLE001 - released and logged; reported per date
                errors[claim.date] = describe(exc)
                continue
            if confirmation is not None:
                published.append(confirmation)
            if error is not None:
                errors[claim.date] = error
        return tuple(published), errors


def _quarantine(spec: PhaseSpec, row: object, exc: InvalidInputError) -> QuarantinedRow:
    """Report a ledger row that can never be applied: a value, an ERROR log line, a count."""

    def text(name: str) -> str:
        value = getattr(row, name, None)
        return value if isinstance(value, str) else f"{value!r:.200}"

    message_id = getattr(row, "message_id", None)
    quarantined = QuarantinedRow(
        date=text("date"),
        processor=text("processor"),
        execution_id=text("execution_id"),
        message_id=None if message_id is None else text("message_id"),
        reason=str(exc),
    )
    counter("tracker.replay_quarantined", "Ledger rows replay skipped: never applicable").add(
        1, {"phase": spec.name}
    )
    fields = {"phase": spec.name, **dataclasses.asdict(quarantined)}
    logger.error(
        "ledger row quarantined, it can never be applied: %s",
        quarantined.reason,
        extra={"pipeline_reliability": fields},
    )
    return quarantined
