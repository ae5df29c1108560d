"""
A known pipeline state for the day/report tests and the ``screenshots`` nox
session: two phases over five dates, one cell in each interesting state, and
(with ``hostile=True``) texts from the store that carry HTML and script.

Run it to write the sample page: ``python tests/cli/report_sample.py OUT.html``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline_reliability import MemoryStore
from pipeline_reliability.completion import CompletionTracker, LedgerRow, MemoryLedger, PhaseSpec
from pipeline_reliability.stores import Outcome, Put, Snapshot
from pipeline_reliability.testing import FakeClock

DATES = ("2026-01-27", "2026-01-28", "2026-01-29", "2026-01-30", "2026-01-31")
START = datetime(2026, 1, 27, 6, 0, tzinfo=UTC)
#: Would mark the page if it ever ran (the tests look for the marker).
SCRIPT = "<script>document.documentElement.setAttribute('data-pwned','script')</script>"
IMG = "\"><img src=x onerror=\"document.documentElement.setAttribute('data-pwned','img')\">"
HOSTILE = (SCRIPT, IMG)

#: The state each cell of the sample is in: (date, phase) -> state.
EXPECTED_STATES: Mapping[tuple[str, str], str] = {
    ("2026-01-27", "phase2"): "triggered", ("2026-01-27", "phase3"): "triggered",
    ("2026-01-28", "phase2"): "triggered", ("2026-01-28", "phase3"): "released",
    ("2026-01-29", "phase2"): "triggered", ("2026-01-29", "phase3"): "overdue",
    ("2026-01-30", "phase2"): "claimed", ("2026-01-30", "phase3"): "no_data",
    ("2026-01-31", "phase2"): "partial", ("2026-01-31", "phase3"): "no_data",
}


def specs() -> list[PhaseSpec]:
    """The sample's phases (``CONFIG`` says the same for the CLI)."""
    return [
        PhaseSpec("phase2", {"scrape_odds", "scrape_boxscores", "scrape_gamebook"},
                  next_phase="phase3", deadline=timedelta(hours=6)),
        PhaseSpec("phase3", {"player_summary", "team_summary", "team_offense"},
                  next_phase="phase4", deadline=timedelta(hours=6)),
    ]


#: The sample's phases as a ``--config`` file.
CONFIG = """
[phases.phase2]
expected = ["scrape_odds", "scrape_boxscores", "scrape_gamebook"]
next_phase = "phase3"
deadline_minutes = 360

[phases.phase3]
expected = ["player_summary", "team_summary", "team_offense"]
next_phase = "phase4"
deadline_minutes = 360
"""


def build(
    hostile: bool = False, *, clock: FakeClock | None = None, store: MemoryStore | None = None
) -> tuple[CompletionTracker, MemoryLedger, FakeClock]:
    """The sample tracker (on ``store``, default a new MemoryStore), its ledger and clock."""
    clock = clock or FakeClock(START)
    store = store or MemoryStore(clock=clock)
    ledger = MemoryLedger()
    owner = f"worker-1{IMG}" if hostile else "worker-1"
    tracker = CompletionTracker(store, specs(), clock=clock, owner=owner)
    meta: dict[str, Any] = {"rows_written": 1200, "source": "bdl"}
    if hostile:
        meta = {"note": SCRIPT, IMG: [SCRIPT]}
    run = IMG if hostile else "run-7"

    def finish(phase: str, day: str, names: list[str], **kw: Any) -> None:
        for name in names:
            clock.advance(timedelta(minutes=7))
            tracker.record_and_trigger(phase, day, name, execution_id=f"{run}-{name}",
                                       publish=lambda event: None, record_count=1200,
                                       metadata=meta, **kw)

    all2 = ["scrape_odds", "scrape_boxscores", "scrape_gamebook"]
    all3 = ["player_summary", "team_summary", "team_offense"]
    for day in DATES[:3]:
        finish("phase2", day, all2)
    finish("phase3", DATES[0], all3)
    # 01-28 phase3: every processor done, the publish failed, the claim was released.
    for name in all3:
        clock.advance(timedelta(minutes=3))
        result = tracker.record_completion("phase3", DATES[1], name, execution_id=f"{run}-{name}")
        if result.trigger is not None:
            error = f"Pub/Sub 503 {SCRIPT}" if hostile else "Pub/Sub 503: service unavailable"
            tracker.release_trigger(result.trigger, error)
    # 01-29 phase3: two of three, then the deadline passes and the sweep marks it overdue.
    finish("phase3", DATES[2], all3[:2])
    clock.advance(timedelta(hours=7))
    tracker.sweep("phase3", [DATES[2]])
    # 01-30 phase2: complete, trigger claimed and not confirmed yet (publish in flight).
    for name in all2:
        result = tracker.record_completion("phase2", DATES[3], name, execution_id=f"r-{name}")
    # 01-31 phase2: one done, one failed, a misspelt name, and one run in the ledger.
    tracker.record_completion("phase2", DATES[4], "scrape_odds", execution_id="r1",
                              metadata=meta)
    tracker.record_completion("phase2", DATES[4], "scrape_boxscores", execution_id="r2",
                              status="failed")
    tracker.record_completion("phase2", DATES[4], "scrape_odz", execution_id="r3")
    ledger.append(LedgerRow(
        "phase2", DATES[4], "scrape_gamebook", run, "success", clock.now(), clock.now(), False,
        metadata=meta, correlation_id=SCRIPT if hostile else None,
    ))
    if hostile:
        tracker.rearm_trigger("phase2", DATES[0], f"operator says {SCRIPT}", by=IMG)
        _side_writer_ignored(store, tracker, DATES[4])
    return tracker, ledger, clock


def _side_writer_ignored(store: MemoryStore, tracker: CompletionTracker, day: str) -> None:
    """An unvalidated writer puts a name with HTML among the ignored (DESIGN F1's side writer)."""
    collection = tracker.phases["phase2"].collection

    def write(snap: Snapshot) -> Outcome[None]:
        data = dict(snap.data or {})
        ignored = dict(data.get("ignored") or {})
        ignored[SCRIPT] = dict(ignored.get("scrape_odz") or {})
        data["ignored"] = ignored
        return Outcome(None, Put(data))

    store.transact(collection, day, write)


def main(argv: list[str]) -> int:
    """Write the sample report to ``argv[0]`` (``--hostile`` for the hostile
    texts, ``--expand`` to open every cell)."""
    from pipeline_reliability.cli._report_html import render_html
    from pipeline_reliability.ops._day import read_day
    from pipeline_reliability.ops._report import build_report

    tracker, ledger, clock = build(hostile="--hostile" in argv)
    days = [read_day(tracker, d, ledger=ledger) for d in DATES]
    report = build_report(days, generated_at=clock.now(), title="Sample pipeline")
    out = Path(next(a for a in argv if not a.startswith("--")))
    out.write_text(render_html(report, expand="--expand" in argv), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
