"""
The expected set of one date, fixed in the date's document the first time it
is needed (static, or from the phase's schedule), and settling a date without
a trigger. Above ``_spec`` and ``_calendar``, which it reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ._events import trigger_id_for
from ._spec import PhaseSpec

__all__ = ["fix_expected", "fixed_expected", "resolve", "skip_trigger"]


def fixed_expected(doc: dict[str, Any] | None) -> frozenset[str] | None:
    """The expected set fixed in a date's document, ``None`` when not fixed yet."""
    value = (doc or {}).get("expected")
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    return None


def resolve(doc: dict[str, Any] | None, spec: PhaseSpec, day: str) -> PhaseSpec:
    """``spec`` as it applies to ``day``: the set fixed in ``doc``, else the schedule's."""
    fixed = fixed_expected(doc)
    return spec.with_expected(spec.expected_for(day) if fixed is None else fixed)


def fix_expected(
    doc: dict[str, Any], spec: PhaseSpec, day: str, now: datetime
) -> tuple[PhaseSpec, bool]:
    """
    Resolve ``spec`` for ``day`` and fix the set in ``doc`` if it is not yet.

    Returns the resolved spec and whether ``doc`` must be written for it: a
    scheduled set is written the first time (so a later change of the
    calendar cannot change this date); a static set rides along with the
    next write. A date with nothing scheduled and ``on_nothing_scheduled=
    "skip"`` is settled here: its trigger is marked ``skipped``.
    """
    fixed = fixed_expected(doc)
    write = False
    if fixed is None:
        fixed = spec.expected_for(day)
        doc["expected"] = sorted(fixed)
        write = spec.schedule is not None
    resolved = spec.with_expected(fixed)
    if not fixed and spec.on_nothing_scheduled == "skip" and doc.get("trigger") is None:
        skip_trigger(doc, resolved, day, "nothing_scheduled", now)
        write = True
    return resolved, write


def skip_trigger(
    doc: dict[str, Any], spec: PhaseSpec, day: str, reason: str, now: datetime
) -> None:
    """Settle the date without a trigger (final, like a confirmed one): ``skipped``."""
    doc["trigger"] = {
        "state": "skipped",
        "trigger_id": trigger_id_for(spec.name, day),
        "attempt": 0,
        "reason": reason,
        "skipped_at": now,
    }
