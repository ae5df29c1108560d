"""``pipeline-reliability lock show|break NAME DATE``."""

from __future__ import annotations

import argparse
from typing import Any

from . import _common
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    add_global_options,
    emit_json,
    parse_date,
)

__all__ = ["register"]

_COLLECTION = "date_locks"


def register(commands: Any) -> None:
    """Add ``lock`` with its ``show`` and ``break`` actions."""
    p = commands.add_parser(
        "lock", help="show or break a date lock",
        description="Show who holds a (name, date) lock, its fencing token and expiry; or "
        "break it (with --force). Breaking keeps the token counter, so the broken holder's "
        "late writes are refused by fenced writers once the next holder has written.",
    )
    add_global_options(p)
    p.add_argument("action", choices=("show", "break"))
    p.add_argument("name", help="the lock's name")
    p.add_argument("date", help="the lock's date, YYYY-MM-DD")
    p.add_argument("--force", action="store_true", help="required by break")
    p.add_argument("--token", type=int, default=None,
                   help="break only if the recorded lease has this token")
    p.add_argument("--collection", default=_COLLECTION,
                   help=f"the locks' collection (default {_COLLECTION})")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the ``lock`` action."""
    from ..lock import DateLock, break_lock

    date = parse_date(args.date)
    if args.token is not None and args.token < 1:
        raise CliError(f"--token {args.token}: fencing tokens start at 1")
    if args.action == "break" and not args.force:
        raise CliError("lock break invalidates the holder's lease: add --force to do it")
    store = _common.connect_store(args)
    info = DateLock.inspect(store, args.name, date, collection=args.collection)
    # Token 0: no lease was ever granted for this (name, date).
    recorded = info.token > 0 or info.holder is not None
    if args.action == "show":
        view = {
            "name": info.name, "date": info.date, "recorded": recorded, "held": info.held,
            "holder": info.holder, "token": info.token, "acquired_at": info.acquired_at,
            "expires_at": info.expires_at, "store_time": info.store_time,
        }
        if args.json:
            emit_json(view)
        elif not recorded:
            print(f"lock {info.name}/{info.date}: never taken (no lease was ever granted in "
                  f"{args.collection!r}); check the name, date and --collection")
        elif info.holder is None:
            print(f"lock {info.name}/{info.date}: free (last token {info.token})")
        else:
            state = "HELD" if info.held else "expired"
            expires = info.expires_at.isoformat() if info.expires_at else "?"
            print(f"lock {info.name}/{info.date}: {state} by {info.holder}, token {info.token}, "
                  f"expires {expires}")
        return EXIT_OK
    broken = break_lock(store, args.name, date, token=args.token, collection=args.collection)
    if args.json:
        emit_json({"name": info.name, "date": info.date, "broken_token": broken,
                   "holder": info.holder if broken is not None else None})
    elif broken is None:
        why = f"no lease with token {args.token}" if args.token is not None else "no lease"
        print(f"lock {info.name}/{info.date}: {why} to break; nothing changed")
    else:
        print(f"lock {info.name}/{info.date}: broke the lease of {info.holder}; "
              f"invalidated token {broken}")
    return EXIT_OK if broken is not None else EXIT_FAILED
