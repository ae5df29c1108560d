"""
``pipeline-reliability watch``: evaluate every configured phase (and the
configured breakers and locks) and report each problem as an alert.

Made to run every few minutes from Cloud Scheduler or cron: exit 0 when
healthy, 1 when alerts fire (or sending them failed), 2 on usage or
environment errors (nothing was evaluated). A table by default, ``--json``.

Thresholds come from the ``--config`` file::

    [watch]                         # optional: breakers and where state is kept
    breakers = ["bigquery-api"]
    breaker_open_minutes = 15
    days = 2                        # today and yesterday in each phase's time zone
    alert_collection = "watch_alerts"

    [phases.phase3.watch]           # optional, per phase
    handoff_minutes = 30            # next phase reported within this after the trigger
    expected_by = "09:00"           # complete by 09:00 local time ...
    expected_by_days_after = 1      #   ... the day after the date (default: the deadline)
    takeover_minutes = 10           # a released/expired claim taken over within this
    ledger_minutes = 30             # ledger rows replayed within this
    locks = ["phase3-ingest"]       # date locks to check on each watched date
    lock_grace_minutes = 1
    disabled = ["degraded_completion"]
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping
from datetime import time, timedelta
from typing import Any

from ..completion import LocalDeadline
from ..errors import ConfigurationError
from . import _common, _ranges
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    add_global_options,
    announce,
    checked_bigquery,
    checked_topic,
    emit_json,
    format_table,
    one_line,
)
from ._phases import phase_names, read_config, resolve_phase
from ._ranges import add_range_options, dates_of

__all__ = ["register"]

_GLOBAL_KEYS = frozenset({"breakers", "breaker_open_minutes", "days", "alert_collection",
                          "breaker_collection", "lock_collection"})
_PHASE_KEYS = frozenset({"handoff_minutes", "expected_by", "expected_by_days_after",
                         "takeover_minutes", "ledger_minutes", "locks", "lock_grace_minutes",
                         "disabled"})


def register(commands: Any) -> None:
    """Add the ``watch`` command."""
    p = commands.add_parser(
        "watch", help="find stalled, late or degraded phases, open breakers and stuck locks",
        description="Evaluate every configured phase over today and yesterday (or the dates "
        "given) and report each problem as an alert with a stable id, once: an alert that "
        "persists is not sent again, one that clears is reported resolved once. Exit status "
        "0 healthy, 1 alerts, 2 usage or environment error.",
    )
    add_global_options(p)
    p.add_argument("dates", nargs="*", help="dates or ranges (default: today and yesterday "
                   "in each phase's time zone; or --from/--to)")
    add_range_options(p)
    p.add_argument("--config", metavar="FILE",
                   help="TOML or JSON file with [phases.NAME] (and [phases.NAME.watch], "
                   "[watch]) tables (default: the built-in presets)")
    p.add_argument("--phase", action="append", default=[], metavar="NAME",
                   help="watch only this phase (repeatable; default: every configured phase)")
    p.add_argument("--breaker", action="append", default=[], metavar="NAME",
                   help="a shared circuit breaker to check (repeatable; adds to [watch] "
                   "breakers)")
    p.add_argument("--ledger-table", metavar="DATASET.TABLE",
                   help="the fallback ledger table (enables the ledger and degraded rules)")
    p.add_argument("--topic", help="Pub/Sub topic for alerts (new and resolved ones, JSON)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_watch)


def cmd_watch(args: argparse.Namespace) -> int:
    """``watch [DATES...] [--config F] [--topic T] [--ledger-table T] [--json]``."""
    from ..completion import CompletionTracker
    from ..ops import watch

    config, specs = _configuration(args)
    dates = (dates_of(args, specs[0], args.dates)
             if args.dates or args.date_from or args.date_to else None)
    store = _common.connect_store(args)
    ledger = _ledger(args)
    notify = _notifier(args)
    owner = f"cli-watch:{socket.gethostname()}:{os.getpid()}"
    tracker = CompletionTracker(store, specs, owner=owner)
    report = watch(store, tracker, config, ledger=ledger, dates=dates, now=_ranges.utc_now(),
                   notify=notify)
    if args.json:
        emit_json(report.to_dict())
    else:
        print(_table(report))
    if report.notify_error is not None:
        announce(f"error: sending alerts to --topic failed (sent again at the next run): "
                 f"{one_line(report.notify_error)}")
        return EXIT_FAILED
    return EXIT_OK if report.healthy else EXIT_FAILED


def _configuration(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    """The ``WatchConfig`` and the phases' specs, or ``CliError`` (exit 2)."""
    from ..ops import WatchConfig

    names = args.phase or phase_names(args)
    phases = [resolve_phase(args, name) for name in names]
    table = read_config(args.config).get("watch", {}) if args.config else {}
    if not isinstance(table, Mapping):
        raise CliError("--config: [watch] must be a table")
    try:
        rules = {p.spec.name: _phase_rules(p.watch) for p in phases}
        return WatchConfig(
            phases=rules, breakers=(*_list(table.get("breakers", []), "breakers"),
                                    *args.breaker),
            **_global_options(table),
        ), [p.spec for p in phases]
    except ConfigurationError as exc:
        raise CliError(f"--config: {exc}") from exc


def _global_options(table: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(table) - _GLOBAL_KEYS
    if unknown:
        raise ConfigurationError(f"[watch]: unknown key(s) {sorted(unknown)}")
    out: dict[str, Any] = {}
    if "breaker_open_minutes" in table:
        out["breaker_open"] = _minutes(table["breaker_open_minutes"], "breaker_open_minutes")
    if "days" in table:
        out["days"] = table["days"]
    for key in ("alert_collection", "breaker_collection", "lock_collection"):
        if key in table:
            out[key] = table[key]
    return out


def _phase_rules(raw: Mapping[str, Any]) -> Any:
    from ..ops import PhaseRules

    unknown = set(raw) - _PHASE_KEYS
    if unknown:
        raise ConfigurationError(f"watch: unknown key(s) {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for key, option in (("handoff_minutes", "handoff"), ("takeover_minutes", "takeover"),
                        ("ledger_minutes", "ledger_wait"), ("lock_grace_minutes", "lock_grace")):
        if key in raw:
            kwargs[option] = _minutes(raw[key], key)
    if "locks" in raw:
        kwargs["locks"] = tuple(_list(raw["locks"], "locks"))
    if "disabled" in raw:
        kwargs["disabled"] = frozenset(_list(raw["disabled"], "disabled"))
    if "expected_by" in raw:
        text = raw["expected_by"]
        try:
            at = time.fromisoformat(text) if isinstance(text, str) else None
        except ValueError:
            at = None
        if at is None or at.tzinfo is not None:
            raise ConfigurationError('expected_by must be a wall-clock time such as "09:00"')
        kwargs["expected_by"] = LocalDeadline(at, raw.get("expected_by_days_after", 0))
    return PhaseRules(**kwargs)


def _minutes(value: Any, key: str) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 5e7:
        raise ConfigurationError(f"{key} must be a positive number of minutes")
    return timedelta(minutes=value)


def _list(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigurationError(f"{key} must be a list of names")
    return value


def _ledger(args: argparse.Namespace) -> Any:
    if not args.ledger_table:
        return None
    from ..sinks.bootstrap import TableId
    from ..sinks.ledger import BigQueryLedger

    try:
        TableId.parse(args.ledger_table)
    except ValueError as exc:
        raise CliError(f"--ledger-table: {exc}") from exc
    return BigQueryLedger(args.ledger_table, checked_bigquery(args, [args.ledger_table]))


def _notifier(args: argparse.Namespace) -> Any:
    """The alert publisher of ``--topic``, once Pub/Sub said the topic exists."""
    if not args.topic:
        return None
    from ..pubsub import PubSubAlertPublisher

    topic, project = checked_topic(args, "alert topic")
    return PubSubAlertPublisher(topic, project=project)


def _table(report: Any) -> str:
    new = {a.id for a in report.new}
    rows = [(a.severity.upper(), "new" if a.id in new else "open", a.rule, a.phase or "-",
             a.date or "-", a.subject or "-", a.message, a.action) for a in report.alerts]
    rows += [(a.severity.upper(), "resolved", a.rule, a.phase or "-", a.date or "-",
              a.subject or "-", a.message, "-") for a in report.resolved]
    watched = ", ".join(f"{p} {' '.join(d)}" for p, d in sorted(report.dates.items()))
    if not rows:
        return f"healthy: no alerts ({watched})"
    table = format_table(("SEVERITY", "STATE", "RULE", "PHASE", "DATE", "SUBJECT", "MESSAGE",
                          "WHAT TO DO"), rows)
    summary = (f"{len(report.alerts)} alert(s) firing ({len(report.new)} new), "
               f"{len(report.resolved)} resolved ({watched})")
    return f"{table}\n{summary}"
