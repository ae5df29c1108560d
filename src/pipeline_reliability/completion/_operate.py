"""
Deliberate, audited operator actions on one (phase, date): re-run the next
phase (``rearm_trigger``) and change the date's expected set (``set_expected``).

Each is one transaction that also appends who, when and why to the date's
bounded audit ring, so ``status`` (and the CLI's ``status``) shows it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date as date_type

from .._telemetry import span
from ..errors import InvalidInputError
from ._checks import check_publish
from ._claims import FINAL
from ._core import Publish, count_claim, logger
from ._decide import rearm_step, set_expected_step
from ._events import TriggerClaim
from ._record import RecordingTracker
from ._results import PhaseStatus, TriggerConfirmation
from ._spec import MAX_EXPECTED, normalise_date, show, validate_name, validate_text

__all__ = ["OperatorTracker"]


class OperatorTracker(RecordingTracker):
    """``rearm_trigger``, ``rearm_and_trigger`` and ``set_expected`` (not public)."""

    def rearm_trigger(
        self, phase: str, date: str | date_type, reason: str, *, by: str | None = None
    ) -> TriggerClaim:
        """
        Deliberately re-run the next phase for a settled date.

        For a date whose trigger is ``confirmed`` (or ``skipped``: a backfill
        or a date with nothing scheduled), claim a new trigger at once:
        ``attempt`` is one more than the last, the ``trigger_id`` is new
        (``<phase>:<date>:rearm<N>``, so consumers that deduplicate on it
        start the next phase again), the reason is ``rearmed``, and the
        document's audit records who (``by``, default the tracker's
        ``owner``), when (store time) and why. Publish the claim, then
        :meth:`confirm_trigger` or :meth:`release_trigger` it (or use
        :meth:`rearm_and_trigger`); if the holder dies, the lease expires and
        the sweep publishes the same new trigger. Exactly one new trigger per call.

        Raises:
            InvalidInputError: bad arguments, or the date's trigger is not
                settled (never claimed, or a claim is in flight): nothing to rearm.
            StoreError, RetryExhaustedError: the store failed; nothing changed.

        .. versionadded:: 0.2.0
        """
        spec = self._spec(phase)
        day = normalise_date(date)
        why = str(validate_text(reason, "reason"))
        who = str(validate_text(self.owner if by is None else by, "by"))
        with span("tracker", "rearm_trigger", {"phase": spec.name, "date": day}):
            decide = rearm_step(spec, day, owner=self.owner, by=who, reason=why)
            result = self._transact(spec, day, decide)
            if not isinstance(result, TriggerClaim):
                raise InvalidInputError(
                    f"{spec.name} {day}: nothing to rearm, the trigger is {result!r} "
                    f"(only a {' or '.join(sorted(FINAL))} trigger can be rearmed)"
                )
            count_claim(result)
            self._observers.claim(result)
            logger.warning(
                "trigger rearmed by %s: %s",
                who,
                why,
                extra={"pipeline_reliability": {"phase": spec.name, "date": day,
                                                "attempt": result.attempt}},
            )
            return result

    def rearm_and_trigger(
        self,
        phase: str,
        date: str | date_type,
        reason: str,
        publish: Publish,
        *,
        by: str | None = None,
    ) -> TriggerConfirmation | None:
        """
        :meth:`rearm_trigger`, then ``publish`` its event and confirm it.

        A failing ``publish`` releases the claim (the sweep publishes it
        later) and raises. Returns ``None`` when the event was published but
        could not be confirmed (the sweep finishes it).

        .. versionadded:: 0.2.0
        """
        check_publish(publish)
        claim = self.rearm_trigger(phase, date, reason, by=by)
        confirmation, _ = self._publish_claim(claim, publish)
        return confirmation

    def set_expected(
        self,
        phase: str,
        date: str | date_type,
        expected: Iterable[str],
        *,
        reason: str,
        by: str | None = None,
    ) -> PhaseStatus:
        """
        Change the expected set fixed for one date, deliberately and audited.

        The set a date uses is fixed in its document the first time it is
        needed, so a calendar that changes later cannot change the date by
        accident; this is the explicit way. A confirmed trigger stays
        confirmed (use :meth:`rearm_trigger` to re-run the next phase); a date
        settled as ``nothing_scheduled`` that now expects processors waits
        for them again. The next delivery or sweep triggers a date that the
        new set completes.

        Raises:
            InvalidInputError: bad arguments (names, more than 50, empty reason).

        .. versionadded:: 0.2.0
        """
        spec = self._spec(phase)
        day = normalise_date(date)
        names = _names(expected)
        why = str(validate_text(reason, "reason"))
        who = str(validate_text(self.owner if by is None else by, "by"))
        with span("tracker", "set_expected", {"phase": spec.name, "date": day}):
            self._transact(spec, day, set_expected_step(spec, day, names, by=who, reason=why))
            logger.warning(
                "expected set of %s %s changed by %s: %s",
                spec.name, day, who, why,
                extra={"pipeline_reliability": {"phase": spec.name, "date": day}},
            )
        return self.status(spec.name, day)


def _names(expected: object) -> frozenset[str]:
    if isinstance(expected, str | bytes) or not isinstance(expected, Iterable):
        raise InvalidInputError(f"expected must be a collection of names, got {show(expected)}")
    names = frozenset(validate_name(n, "expected processor") for n in expected)
    if len(names) > MAX_EXPECTED:
        raise InvalidInputError(f"at most {MAX_EXPECTED} expected processors per date")
    return names

