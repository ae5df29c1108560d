"""``pipeline-reliability simulate``: the main job."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import IO, Any

from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    add_global_options,
    announce,
    connect_timeout,
    emit_json,
    parse_date,
)

__all__ = ["ProgressBar", "register"]


def register(commands: Any) -> None:
    """Add the ``simulate`` command."""
    p = commands.add_parser(
        "simulate",
        help="run a chaos game day and check every guarantee (the main job)",
        description="Simulate dates x phases of a pipeline under chaos (duplicate and late "
        "deliveries, re-runs, a Firestore outage, failing trigger publishes, lock races, a "
        "flaky downstream, duplicate rows), then check the invariants. Exit status 1 when "
        "one is violated.",
    )
    add_global_options(p)
    p.add_argument("--dates", type=int, default=7, help="how many dates (default 7)")
    p.add_argument("--workers", type=int, default=None,
                   help="instances (threads) (default 4; 2 with --emulators)")
    p.add_argument("--chaos", choices=("none", "low", "medium", "high"), default="medium",
                   help="how much goes wrong (default medium)")
    p.add_argument("--seed", type=int, default=0, help="the same seed prints the same report")
    p.add_argument("--start", default="2026-01-25", help="first date (default 2026-01-25)")
    p.add_argument("--list-invariants", action="store_true",
                   help="list the invariants a run checks, and what each means; run nothing")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--emulators", action="store_true",
                   help="run on the Firestore/Pub/Sub/BigQuery emulators (taken from "
                   "*_EMULATOR_HOST, or started)")
    progress = p.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="always draw the progress bar on stderr")
    progress.add_argument("--no-progress", dest="progress", action="store_false",
                          help="never draw it (default: only when stderr is a terminal)")
    # The run injects failures on purpose; the library logs each one with its
    # traceback. Show them with -v.
    p.set_defaults(handler=run, log_floor=logging.CRITICAL)


def run(args: argparse.Namespace) -> int:
    """Run the simulation and print its report."""
    import datetime as dt

    from . import simulate
    from .simulate._invariants import INVARIANTS

    if args.list_invariants:
        width = max(map(len, INVARIANTS))
        for name, meaning in INVARIANTS.items():
            print(f"{name.ljust(width)}  {meaning}")
        return EXIT_OK
    start = dt.date.fromisoformat(parse_date(args.start, "--start"))
    workers = args.workers if args.workers is not None else (2 if args.emulators else 4)
    config = simulate.SimulationConfig(
        dates=args.dates, workers=workers, chaos=args.chaos, seed=args.seed, start=start,
        emulators=args.emulators, connect_timeout=connect_timeout(args),
    )
    show = sys.stderr.isatty() if args.progress is None else bool(args.progress)
    bar = ProgressBar(sys.stderr) if show else None
    parts = simulate.build_components(config)
    announce(parts.description)
    try:
        report = simulate.run_simulation(config, parts, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        emit_json(report.to_json())
    else:
        print(simulate.render_text(report))
    return EXIT_OK if report.ok else EXIT_FAILED


class ProgressBar:
    """A one-line progress bar redrawn in place (``\\r``) on a stream."""

    def __init__(self, stream: IO[str], width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.drawn = False
        self.filled = 0

    def __call__(self, tick: int, done: int, known: int) -> None:
        """
        Redraw: deliveries handled so far of those known.

        The total grows when failures add redeliveries; the bar never moves
        back: it shows the largest share reached so far.
        """
        share = min(1.0, done / known) if known else 1.0
        self.filled = filled = max(self.filled, int(share * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\rsimulate [{bar}] {done}/{known} deliveries, tick {tick + 1}")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        """End the line so the report starts on a fresh one."""
        if self.drawn:
            self.stream.write("\n" if os.name != "nt" else "\r\n")
            self.stream.flush()
