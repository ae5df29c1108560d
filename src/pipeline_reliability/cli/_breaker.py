"""``pipeline-reliability breaker show|open|close NAME``."""

from __future__ import annotations

import argparse
import os
import socket
from typing import Any

from . import _common
from ._common import EXIT_OK, add_global_options, emit_json

__all__ = ["register"]

_COLLECTION = "circuit_breakers"


def register(commands: Any) -> None:
    """Add ``breaker`` with its ``show``, ``open`` and ``close`` actions."""
    p = commands.add_parser(
        "breaker", help="show, force open or force close a shared circuit breaker",
        description="Show a shared circuit breaker's state, or force it open or closed for "
        "every instance (each is one compare-and-set write).",
    )
    add_global_options(p)
    p.add_argument("action", choices=("show", "open", "close"))
    p.add_argument("name", help="the breaker's name (any string)")
    p.add_argument("--collection", default=_COLLECTION,
                   help=f"the breakers' collection (default {_COLLECTION})")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the ``breaker`` action."""
    from ..breaker import CircuitBreaker

    breaker = CircuitBreaker(
        args.name, _common.connect_store(args), collection=args.collection,
        instance_id=f"cli:{socket.gethostname()}:{os.getpid()}",
    )
    before = breaker.status(refresh=True)
    if args.action == "open":
        breaker.force_open()
    elif args.action == "close":
        breaker.force_close()
    after = breaker.status(refresh=True) if args.action != "show" else before
    # Generation 0: no transition was ever written, by any instance or operator.
    recorded = after.generation > 0
    view = {
        "name": after.name, "recorded": recorded, "state": after.state.value,
        "generation": after.generation, "opened_at": after.opened_at, "forced": after.forced,
        "probe_holder": after.probe_holder, "probe_expires_at": after.probe_expires_at,
        # Only an action has a state before it; show changes nothing.
        "previous_state": None if args.action == "show" else before.state.value,
    }
    if args.json:
        emit_json(view)
        return EXIT_OK
    if not recorded:
        print(f"breaker {after.name!r}: no state recorded in {args.collection!r} (never opened "
              "or forced by any instance: closed); check the name and --collection")
        return EXIT_OK
    changed = "" if args.action == "show" else f" (was {before.state.value})"
    print(f"breaker {after.name!r}: {after.state.value}{changed}, generation {after.generation}"
          + (", forced" if after.forced else ""))
    if after.opened_at is not None:
        print(f"  opened at {after.opened_at.isoformat()}")
    if after.probe_holder is not None:
        expires = after.probe_expires_at.isoformat() if after.probe_expires_at else "?"
        print(f"  half-open probe held by {after.probe_holder} until {expires}")
    return EXIT_OK
