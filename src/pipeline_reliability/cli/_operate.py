"""
Deliberate operator actions on one date: ``rearm`` (re-run the next phase:
exactly one new trigger, audited) and ``set-expected`` (change the expected
set fixed for a date, audited).
"""

from __future__ import annotations

import argparse
import getpass
import socket
from typing import Any

from ..errors import InvalidInputError
from . import _tracker
from ._common import EXIT_FAILED, EXIT_OK, CliError, emit_json, parse_date
from ._phases import resolve_phase

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add ``rearm`` and ``set-expected``."""
    rearm = _tracker._command(
        commands, "rearm", cmd_rearm,
        "re-run the next phase for a date whose trigger is confirmed or skipped "
        "(one new trigger, audited)",
    )
    rearm.add_argument("phase")
    rearm.add_argument("date")
    rearm.add_argument("--reason", required=True, help="why (kept in the date's audit)")
    rearm.add_argument("--by", help="who (default: user@host)")
    _tracker._add_topic(rearm)

    expected = _tracker._command(
        commands, "set-expected", cmd_set_expected,
        "change the expected processors fixed for one date (audited)",
    )
    expected.add_argument("phase")
    expected.add_argument("date")
    expected.add_argument("processors", help="comma-separated names ('' for none)")
    expected.add_argument("--reason", required=True, help="why (kept in the date's audit)")
    expected.add_argument("--by", help="who (default: user@host)")


def _who(args: argparse.Namespace) -> str:
    if args.by:
        return str(args.by)
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in a container
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def cmd_rearm(args: argparse.Namespace) -> int:
    """``rearm PHASE DATE --reason R --topic T``."""
    phase = resolve_phase(args, args.phase)
    date = parse_date(args.date)
    if not args.topic:
        raise CliError("rearm needs --topic to publish the new trigger")
    tracker = _tracker._tracker(args, phase)
    publish = _tracker._publisher(args)
    assert publish is not None
    try:
        confirmation = tracker.rearm_and_trigger(
            phase.spec.name, date, args.reason, publish, by=_who(args)
        )
    except InvalidInputError as exc:
        raise CliError(str(exc), EXIT_FAILED) from exc
    status = tracker.status(phase.spec.name, date)
    result = {
        "phase": phase.spec.name, "date": date, "published": True,
        "confirmed": confirmation is not None, "attempt": status.trigger_attempt,
    }
    if args.json:
        emit_json(result)
    else:
        note = "" if confirmation is not None else " (not confirmed yet: the sweep finishes it)"
        print(f"{phase.spec.name} {date}: new trigger published, attempt "
              f"{status.trigger_attempt}{note}")
    return EXIT_OK


def cmd_set_expected(args: argparse.Namespace) -> int:
    """``set-expected PHASE DATE a,b,c --reason R``."""
    phase = resolve_phase(args, args.phase)
    date = parse_date(args.date)
    names = [n.strip() for n in args.processors.split(",") if n.strip()]
    tracker = _tracker._tracker(args, phase)
    try:
        status = tracker.set_expected(
            phase.spec.name, date, names, reason=args.reason, by=_who(args)
        )
    except InvalidInputError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        emit_json(_tracker._status_json(status))
    else:
        print(_tracker._status_text(status))
    return EXIT_OK
