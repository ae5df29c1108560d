"""
The day at a glance: ``day DATE`` prints every phase of one date (processors
by state, times, trigger, degraded completions); ``report --from D1 --to D2
--html FILE`` writes the dates by phases grid as one self-contained HTML page.

Both only read (``tracker.status`` and, with ``--ledger-table``, the fallback
ledger). Input is checked before the store is opened; the store (and
BigQuery) must answer the reachability check before any read.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..ops._day import DayView, LedgerReader, PhaseDay, read_day
from ..ops._report import build_report
from . import _common
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    add_global_options,
    emit_json,
    format_table,
    one_line,
    parse_date,
)
from ._phases import PRESETS, PhaseConfig, resolve_phase
from ._ranges import Progress, dates_of, paced, rate

__all__ = ["register"]

_SETTLED = frozenset({"triggered", "skipped"})


def register(commands: Any) -> None:
    """Add ``day`` and ``report``."""
    day = _command(commands, "day", cmd_day,
                   "every phase of one date: processors, times, trigger, degraded completions")
    day.add_argument("date", help="the date, YYYY-MM-DD")
    day.add_argument("--json", action="store_true", help="print JSON")
    day.add_argument("--check", action="store_true",
                     help="exit 1 unless every phase is triggered (or settled without one)")

    report = _command(commands, "report", cmd_report,
                      "write a dates by phases HTML report of a date range")
    report.add_argument("--from", dest="date_from", metavar="DATE", required=True,
                        help="first date")
    report.add_argument("--to", dest="date_to", metavar="DATE", required=True, help="last date")
    report.add_argument("--html", metavar="FILE", required=True,
                        help="where to write the page (replaced if it exists)")
    report.add_argument("--rate", type=float, default=5.0, metavar="N",
                        help="at most N dates per second (default 5)")
    report.add_argument("--title", default="Pipeline report", help="the page's title")


def _command(commands: Any, name: str, handler: Any, text: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = commands.add_parser(
        name, help=text, description=text[0].upper() + text[1:] + "."
    )
    add_global_options(p)
    p.add_argument("--config", metavar="FILE",
                   help="TOML or JSON file with [phases.NAME] tables (default: the built-in "
                   f"presets {', '.join(PRESETS)})")
    p.add_argument("--phase", action="append", default=[], metavar="NAME",
                   help="only this phase (repeatable; default: every configured phase)")
    p.add_argument("--ledger-table", metavar="DATASET.TABLE",
                   help="the BigQuery fallback ledger: show completions waiting in it")
    p.set_defaults(handler=handler)
    return p


# -- day ------------------------------------------------------------------------------------


def cmd_day(args: argparse.Namespace) -> int:
    """``day DATE``."""
    date = parse_date(args.date)
    phases = _phases(args)
    tracker, ledger = _open(args, phases)
    view = read_day(tracker, date, ledger=ledger)
    if args.json:
        emit_json(_day_json(view))
    else:
        print(day_text(view))
    if view.errors:
        return EXIT_FAILED
    settled = all(p.state in _SETTLED for p in view.phases)
    return EXIT_FAILED if args.check and not settled else EXIT_OK


def _day_json(view: DayView) -> dict[str, Any]:
    return {
        "date": view.date,
        "phases": [{**dataclasses.asdict(p), "degraded": p.degraded} for p in view.phases],
    }


def day_text(view: DayView) -> str:
    """The ``day`` table: one line per phase, then each phase's processors and trigger."""
    summary = format_table(
        ["phase", "state", "done", "trigger", "degraded", "deadline"],
        ([p.phase, p.state, f"{p.count}/{p.expected}", _trigger(p),
          f"{p.in_ledger} in ledger" if p.in_ledger else ("yes" if p.degraded else "-"),
          _time(p.deadline_at)] for p in view.phases),
    )
    parts = [f"{view.date}", summary]
    for p in view.phases:
        parts.append(_phase_text(p))
    return "\n\n".join(parts)


def _phase_text(p: PhaseDay) -> str:
    lines = [f"{p.phase} {p.date}: {p.state}"]
    if p.error:
        lines.append(f"  ERROR: {one_line(p.error)}")
    if p.processors:
        table = format_table(
            ["processor", "state", "status", "run", "completed", "reported", "rows"],
            ([x.name, x.state, x.status or "-", one_line(x.execution_id or "-", 60),
              _time(x.completed_at), _time(x.reported_at),
              "-" if x.record_count is None else x.record_count] for x in p.processors),
        )
        lines += ["  " + line for line in table.splitlines()]
    for step in p.history:
        detail = f": {one_line(step.detail, 200)}" if step.detail else ""
        lines.append(f"  {_time(step.at)}  {step.what}{detail}")
    return "\n".join(lines)


def _trigger(p: PhaseDay) -> str:
    if not p.trigger_reason:
        return p.trigger_state
    return f"{p.trigger_state} ({p.trigger_reason}, attempt {p.trigger_attempt})"


def _time(at: datetime | None) -> str:
    return at.isoformat(timespec="seconds") if at is not None else "-"


# -- report ---------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    """``report --from D1 --to D2 --html FILE``."""
    phases = _phases(args)
    rate(args)
    dates = dates_of(args, phases[0].spec, [])
    target = _target(args.html)
    tracker, ledger = _open(args, phases)
    progress = Progress(len(dates), "report")
    days = [read_day(tracker, d, ledger=ledger) for d in paced(dates, rate(args), progress)]
    report = build_report(days, generated_at=datetime.now(UTC), title=args.title)
    from ._report_html import render_html

    _write(target, render_html(report))
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n)
    print(f"wrote {target}: {len(report.dates)} date(s), {len(report.phases)} phase(s); "
          f"{counts or 'no cells'}")
    return EXIT_FAILED if report.errors else EXIT_OK


def _target(text: str) -> Path:
    """``--html``, checked before anything is read: its folder must exist and be writable."""
    path = Path(text)
    folder = path.parent
    if path.is_dir():
        raise CliError(f"--html {text}: is a folder; give a file name")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise CliError(f"--html {text}: folder {folder} does not exist or is not writable")
    return path


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a reader never sees half a page)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        Path(tmp).replace(path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise CliError(f"cannot write --html {path}: {exc.strerror or exc}", EXIT_FAILED) from exc


# -- shared ---------------------------------------------------------------------------------


def _phases(args: argparse.Namespace) -> list[PhaseConfig]:
    """``--phase`` (each checked), else every phase of ``--config`` or the presets."""
    names = list(dict.fromkeys(args.phase))
    if not names:
        from ._phases import _load

        names = list(_load(args.config)) if args.config else list(PRESETS)
    args.expected = None  # resolve_phase reads it; these commands take no --expected
    return [resolve_phase(args, name) for name in names]


def _open(args: argparse.Namespace, phases: list[PhaseConfig]) -> tuple[Any, LedgerReader | None]:
    """A read-only tracker on the store (and the ledger), once they answered."""
    from ..completion import CompletionTracker

    ledger: LedgerReader | None = None
    if args.ledger_table is not None:
        from ..sinks.bootstrap import TableId

        try:
            TableId.parse(args.ledger_table)
        except ValueError as exc:
            raise CliError(f"--ledger-table: {exc}") from exc
    store = _common.connect_store(args)
    if args.ledger_table is not None:
        from ..sinks.ledger import BigQueryLedger

        client = _common.checked_bigquery(args, [args.ledger_table])
        ledger = BigQueryLedger(args.ledger_table, client)
    owner = f"cli:{socket.gethostname()}:{os.getpid()}"
    tracker = CompletionTracker(store, [p.spec for p in phases], owner=owner)
    return tracker, ledger
