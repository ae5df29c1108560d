"""
Many dates at a glance: the dates by phases grid of the ``report`` command,
made of :class:`DayView` values (one per date, read with :func:`read_day`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from ..errors import InvalidInputError
from ._day import CELL_STATES, DayView, PhaseDay

__all__ = ["DayReport", "build_report"]


@dataclass(frozen=True, slots=True)
class DayReport:
    """
    A dates by phases grid: ``days`` in date order, ``phases`` in column order.

    ``generated_at`` is when it was read (shown on the page); ``title`` names it.
    """

    phases: tuple[str, ...]
    days: tuple[DayView, ...]
    generated_at: datetime | None = None
    title: str = "Pipeline report"

    @property
    def dates(self) -> tuple[str, ...]:
        """The report's dates, oldest first."""
        return tuple(d.date for d in self.days)

    def cell(self, date: str, phase: str) -> PhaseDay | None:
        """The cell of ``(date, phase)``; ``None`` when the report does not have it."""
        for day in self.days:
            if day.date == date:
                return next((p for p in day.phases if p.phase == phase), None)
        return None

    def counts(self) -> Mapping[str, int]:
        """How many cells are in each state (every state of ``CELL_STATES``, zeros included)."""
        found = Counter(p.state for d in self.days for p in d.phases)
        return {state: found.get(state, 0) for state in CELL_STATES}

    @property
    def errors(self) -> tuple[PhaseDay, ...]:
        """The cells whose status could not be read."""
        return tuple(p for d in self.days for p in d.errors)


def build_report(
    days: Iterable[DayView],
    *,
    generated_at: datetime | None = None,
    title: str = "Pipeline report",
) -> DayReport:
    """
    Lay ``days`` out as a grid, sorted by date; the phases are the union of
    the days' phases in the order they first appear.

    Raises:
        InvalidInputError: the same date twice.
    """
    ordered = sorted(days, key=lambda d: d.date)
    dates = [d.date for d in ordered]
    if len(set(dates)) != len(dates):
        raise InvalidInputError("a report needs each date once")
    phases = dict.fromkeys(p.phase for d in ordered for p in d.phases)
    return DayReport(tuple(phases), tuple(ordered), generated_at, title)
