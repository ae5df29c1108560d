"""
The completion tracker's operator commands: ``status``, ``sweep``,
``reconcile``, ``replay``.

Input is validated (phase, dates, table ids) before the store is opened;
then the store, the topic and the BigQuery tables are checked with a short
deadline. Only then does work start, so a bad command line or an unreachable
or missing service writes nothing.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

from . import _common
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    add_global_options,
    announce,
    checked_bigquery,
    checked_topic,
    emit_json,
    parse_date,
)
from ._phases import PhaseConfig, add_phase_options, resolve_phase
from ._ranges import Progress, add_range_options, dates_of, paced, rate

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add ``status``, ``sweep``, ``reconcile`` and ``replay``."""
    status = _command(commands, "status", cmd_status,
                      "which processors of a phase finished for a date, and the trigger state")
    status.add_argument("phase", help="the phase, e.g. phase3")
    status.add_argument("date", nargs="?",
                        help="the date, YYYY-MM-DD (default: today and yesterday in the "
                        "phase's time zone; or --from/--to)")
    status.add_argument("--check", action="store_true",
                        help="exit 1 unless the phase's trigger is confirmed (or settled "
                        "without one)")
    add_range_options(status)

    sweep = _command(commands, "sweep", cmd_sweep,
                     "trigger dates whose trigger is due (deadlines, released or stale claims)")
    sweep.add_argument("phase")
    sweep.add_argument(
        "dates", nargs="*", help="dates or ranges: 2026-01-30 2026-01-01..2026-01-07 "
        "(default: today and yesterday in the phase's time zone)"
    )
    add_range_options(sweep)
    _add_topic(sweep)
    sweep.add_argument("--dry-run", action="store_true",
                       help="only show what is due; claim and publish nothing")
    sweep.add_argument("--replay-first", action="store_true",
                       help="first replay the completions waiting in the fallback ledger "
                       "(--ledger-table) for these dates, then sweep")
    sweep.add_argument("--ledger-table", metavar="DATASET.TABLE",
                       help="the fallback ledger table (for --replay-first)")

    reconcile = _command(commands, "reconcile", cmd_reconcile,
                         "record missing processors whose output rows exist in BigQuery")
    reconcile.add_argument("phase")
    reconcile.add_argument("date")
    reconcile.add_argument("--output", action="append", default=[], metavar="PROCESSOR=TABLE",
                           help="a processor's output table (repeatable; default: the "
                           "config's outputs)")
    reconcile.add_argument("--date-column", default=None, help="the tables' DATE column")
    _add_backfill(reconcile)
    _add_topic(reconcile)

    replay = _command(commands, "replay", cmd_replay,
                      "bring the store up to the BigQuery fallback ledger for some dates")
    replay.add_argument("phase")
    replay.add_argument("dates", nargs="*", help="dates or ranges (or --from/--to)")
    add_range_options(replay)
    _add_backfill(replay)
    replay.add_argument("--ledger-table", required=True, metavar="DATASET.TABLE",
                        help="the fallback ledger table")
    _add_topic(replay)


def _command(commands: Any, name: str, handler: Callable[..., int], text: str) -> Any:
    p = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
    add_global_options(p)
    add_phase_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=handler)
    return p


def _ledger_table(args: argparse.Namespace) -> str:
    from ..sinks.bootstrap import TableId

    try:
        TableId.parse(args.ledger_table)
    except ValueError as exc:
        raise CliError(f"--ledger-table: {exc}") from exc
    return str(args.ledger_table)


def _add_backfill(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backfill", action="store_true",
                   help="record without ever triggering the next phase (a date this "
                   "completes is settled as skipped; see `rearm`)")


def _add_topic(p: argparse.ArgumentParser) -> None:
    p.add_argument("--topic", help="Pub/Sub topic for triggers (projects/P/topics/T or a name)")


def _tracker(args: argparse.Namespace, phase: PhaseConfig, ledger_table: str | None = None) -> Any:
    """A tracker on the store, once it answered (and BigQuery, for a ledger table)."""
    from ..completion import CompletionTracker

    store = _common.connect_store(args)
    ledger = None
    if ledger_table is not None:
        from ..sinks.ledger import BigQueryLedger

        ledger = BigQueryLedger(ledger_table, checked_bigquery(args, [ledger_table]))
    owner = f"cli:{socket.gethostname()}:{os.getpid()}"
    return CompletionTracker(store, [phase.spec], ledger=ledger, owner=owner)


def _publisher(args: argparse.Namespace) -> Callable[[Any], object] | None:
    """The trigger publisher of ``--topic``, once Pub/Sub said the topic exists."""
    if not args.topic:
        return None
    from ..pubsub import PubSubTriggerPublisher

    topic, project = checked_topic(args)
    publisher: Callable[[Any], object] = PubSubTriggerPublisher(topic, project=project)
    return publisher


# -- status ---------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    """``status PHASE [DATE | --from D1 --to D2]``."""
    phase = resolve_phase(args, args.phase)
    dates = dates_of(args, phase.spec, [args.date] if args.date else [])
    tracker = _tracker(args, phase)
    progress = Progress(len(dates), f"status {phase.spec.name}")
    found = [tracker.status(phase.spec.name, d) for d in paced(dates, rate(args), progress)]
    if args.json:
        emit_json(_status_json(found[0]) if len(found) == 1 else [_status_json(s) for s in found])
    else:
        print("\n\n".join(_status_text(s) for s in found))
    settled = all(s.triggered or s.trigger_state == "skipped" for s in found)
    return EXIT_FAILED if args.check and not settled else EXIT_OK


def _status_json(status: Any) -> dict[str, Any]:
    return {
        "phase": status.phase, "date": status.date, "count": status.count,
        "expected": sorted(status.expected), "completed": sorted(status.completed),
        "missing": sorted(status.missing), "ignored": sorted(status.ignored),
        "trigger": {"state": status.trigger_state, "reason": status.trigger_reason,
                    "attempt": status.trigger_attempt, "owner": status.trigger_owner,
                    "lease_expires_at": status.lease_expires_at},
        "deadline_at": status.deadline_at, "deadline_exceeded": status.deadline_exceeded,
        "timezone": status.timezone, "nothing_scheduled": status.nothing_scheduled,
        "expected_fixed": status.expected_fixed,
        "gate": {"gated": status.gated, "reason": status.gate_reason,
                 "since": status.gate_since},
        "audit": [{"op": a.op, "by": a.by, "at": a.at, "reason": a.reason, **a.details}
                  for a in status.audit],
        "records": {name: {"status": r.status, "execution_id": r.execution_id,
                           "reported_at": r.reported_at, "runs": r.runs,
                           "record_count": r.record_count}
                    for name, r in sorted(status.records.items())},
        "from_ledger": status.from_ledger,
    }


def _status_text(status: Any) -> str:
    done = "COMPLETE" if not status.missing else "INCOMPLETE"
    lines = [f"{status.phase} {status.date}: {done} ({status.count}/{len(status.expected)})"]
    if status.from_ledger:
        lines.append("  (the store was unreachable: rebuilt from the fallback ledger)")
    for name in sorted(status.expected):
        record = status.records.get(name)
        if name in status.completed and record is not None:
            when = record.reported_at.isoformat() if record.reported_at else "?"
            lines.append(f"  done     {name}  {record.status}  run {record.execution_id}  {when}")
        else:
            lines.append(f"  missing  {name}")
    for name in sorted(status.ignored):
        lines.append(f"  ignored  {name}  (not expected by {status.phase})")
    trigger = f"trigger: {status.trigger_state}"
    if status.trigger_reason:
        trigger += f" ({status.trigger_reason}, attempt {status.trigger_attempt})"
    if status.trigger_state == "claimed" and status.lease_expires_at is not None:
        until = status.lease_expires_at.isoformat()
        trigger += f", claimed by {status.trigger_owner} until {until}"
    lines.append(trigger)
    if status.nothing_scheduled:
        lines.append("nothing scheduled for this date")
    if status.gated:
        lines.append(f"GATED: {status.gate_reason}")
    if status.deadline_at is not None and not status.nothing_scheduled:
        exceeded = " (EXCEEDED)" if status.deadline_exceeded else ""
        local = status.deadline_at.astimezone(_zone(status.timezone)).isoformat()
        lines.append(f"deadline: {local} {status.timezone}{exceeded}")
    for entry in status.audit:
        when = entry.at.isoformat() if entry.at else "?"
        lines.append(f"audit: {when} {entry.op} by {entry.by}: {entry.reason}")
    return "\n".join(lines)


def _zone(name: str) -> Any:
    from ..completion._calendar import zone

    return zone(name)


# -- sweep ----------------------------------------------------------------------------------


def cmd_sweep(args: argparse.Namespace) -> int:
    """``sweep PHASE DATES...``."""
    phase = resolve_phase(args, args.phase)
    dates = dates_of(args, phase.spec, args.dates)
    if not args.dry_run and not args.topic:
        raise CliError("sweep needs --topic to publish the triggers it claims (or --dry-run)")
    if args.replay_first and (args.dry_run or not args.ledger_table):
        raise CliError("--replay-first needs --ledger-table, and writes: not with --dry-run")
    tracker = _tracker(args, phase, _ledger_table(args) if args.replay_first else None)
    publish = None if args.dry_run else _publisher(args)
    rows, ok = [], True
    if args.replay_first and publish is not None:
        replayed = tracker.replay_and_trigger(phase.spec.name, dates, publish)
        ok = not replayed.publish_errors
        announce(f"replayed {replayed.applied} of {replayed.rows} ledger row(s) first"
                 + (f"; {len(replayed.quarantined)} quarantined" if replayed.quarantined
                    else ""))
    progress = Progress(len(dates), f"sweep {phase.spec.name}")
    for day in paced(dates, rate(args), progress):
        if publish is None:
            # The tracker's own dry run: the same decision as the real sweep, nothing written.
            preview = tracker.sweep(phase.spec.name, [day], dry_run=True)
            rows += [{"date": o.date, "action": "due" if o.action == "claimed" else o.action,
                      "missing": sorted(o.missing), "error": o.error, "reason": o.reason}
                     for o in preview.outcomes]
            ok = ok and preview.ok
            continue
        report = tracker.sweep_and_trigger(phase.spec.name, [day], publish)
        published = {c.claim.date for c in report.published}
        rows += [{"date": o.date, "action": "published" if o.date in published else o.action,
                  "missing": sorted(o.missing), "reason": o.reason,
                  "error": o.error or report.publish_errors.get(o.date)}
                 for o in report.outcomes]
        ok = ok and report.ok
    _print_rows(args, phase, rows)
    return EXIT_OK if ok else EXIT_FAILED


def _print_rows(args: argparse.Namespace, phase: PhaseConfig, rows: list[dict[str, Any]]) -> None:
    if args.json:
        emit_json({"phase": phase.spec.name, "dates": rows})
        return
    for row in rows:
        extra = f"  missing: {', '.join(row['missing'])}" if row["missing"] else ""
        shown = row.get("reason") and row["action"] in {"gated", "skipped"}
        reason = f" ({row['reason']})" if shown else ""
        error = f"  ERROR: {row['error']}" if row.get("error") else ""
        print(f"{phase.spec.name} {row['date']}: {row['action']}{reason}{extra}{error}")


# -- reconcile ------------------------------------------------------------------------------


def cmd_reconcile(args: argparse.Namespace) -> int:
    """``reconcile PHASE DATE``."""
    phase = resolve_phase(args, args.phase)
    date = parse_date(args.date)
    outputs = _outputs(args, phase)
    from ..sinks.evidence import bigquery_output_evidence

    column = args.date_column or phase.date_column
    tracker = _tracker(args, phase)
    publish = _publisher(args)
    # Asked before anything is written: a missing table stops the command here.
    client = checked_bigquery(args, outputs.values())
    evidence = bigquery_output_evidence(outputs, date, date_column=column, client=client)
    if args.backfill:
        report = tracker.reconcile(phase.spec.name, date, evidence.get, trigger=False)
    elif publish is not None:
        report = tracker.reconcile_and_trigger(phase.spec.name, date, evidence.get, publish)
    else:
        report = tracker.reconcile(phase.spec.name, date, evidence.get)
        if report.claim is not None:
            # Nobody will publish it here: free it at once for a sweep with a topic.
            tracker.release_trigger(report.claim, "reconcile ran without --topic")
    result = {
        "phase": report.phase, "date": report.date, "reconciled": sorted(report.reconciled),
        "still_missing": sorted(report.still_missing), "count": report.count,
        "triggered": report.confirmation is not None, "publish_error": report.publish_error,
    }
    if args.json:
        emit_json(result)
    else:
        reconciled = sorted(report.reconciled) or "nothing"
        missing = sorted(report.still_missing) or "nothing"
        published = "; trigger published" if result["triggered"] else ""
        print(f"{report.phase} {report.date}: reconciled {reconciled}; still missing "
              f"{missing}; count {report.count}{published}")
    return EXIT_FAILED if report.publish_error else EXIT_OK


def _outputs(args: argparse.Namespace, phase: PhaseConfig) -> Mapping[str, str]:
    outputs = dict(phase.outputs)
    for item in args.output:
        name, sep, table = item.partition("=")
        if not sep or not name or not table:
            raise CliError(f"--output {item!r}: expected PROCESSOR=TABLE")
        outputs[name] = table
    unknown = sorted(set(outputs) - phase.spec.expected)
    if unknown:
        raise CliError(f"--output names processors {phase.spec.name} does not expect: {unknown}")
    if not outputs:
        raise CliError("reconcile needs output tables: --output PROCESSOR=TABLE or a --config "
                       "with [phases.NAME.outputs]")
    return outputs


# -- replay ---------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    """``replay PHASE DATES... --ledger-table T``."""
    phase = resolve_phase(args, args.phase)
    dates = dates_of(args, phase.spec, args.dates)
    from ..sinks.bootstrap import TableId

    try:
        TableId.parse(args.ledger_table)
    except ValueError as exc:
        raise CliError(f"--ledger-table: {exc}") from exc
    tracker = _tracker(args, phase, args.ledger_table)
    publish = None if args.backfill else _publisher(args)
    progress = Progress(len(dates), f"replay {phase.spec.name}")
    reports = []
    for day in paced(dates, rate(args), progress):
        if publish is not None:
            one = tracker.replay_and_trigger(phase.spec.name, [day], publish)
        else:
            one = tracker.replay_ledger(phase.spec.name, [day], trigger=not args.backfill)
            for claim in one.claims:
                tracker.release_trigger(claim, "replay ran without --topic")
        reports.append(one)
    report = _merge_replays(phase.spec.name, reports)
    result = {
        "phase": report.phase, "dates": list(report.dates), "rows": report.rows,
        "applied": report.applied, "duplicates": report.duplicates,
        "triggered": sorted(c.claim.date for c in report.published),
        "publish_errors": dict(report.publish_errors),
        "due_without_topic": [] if publish else sorted(c.date for c in report.claims),
        "quarantined": [{"date": q.date, "processor": q.processor,
                         "execution_id": q.execution_id, "reason": q.reason}
                        for q in report.quarantined],
    }
    if args.json:
        emit_json(result)
    else:
        print(f"{report.phase}: {report.rows} ledger row(s), {report.applied} applied, "
              f"{report.duplicates} already in the store; "
              f"triggered {result['triggered'] or 'none'}")
        if result["due_without_topic"]:
            print(f"due but not published (no --topic): {result['due_without_topic']}")
        for q in report.quarantined:
            print(f"QUARANTINED {q.date} {q.processor} run {q.execution_id}: {q.reason}")
    return EXIT_FAILED if report.publish_errors else EXIT_OK


def _merge_replays(phase: str, reports: list[Any]) -> Any:
    """One report for a replay run date by date."""
    from ..completion import ReplayReport

    return ReplayReport(
        phase,
        tuple(d for r in reports for d in r.dates),
        sum(r.rows for r in reports),
        sum(r.applied for r in reports),
        sum(r.duplicates for r in reports),
        tuple(c for r in reports for c in r.claims),
        tuple(c for r in reports for c in r.published),
        {k: v for r in reports for k, v in r.publish_errors.items()},
        tuple(q for r in reports for q in r.quarantined),
    )
