"""
Benchmark: run history never slows a completion (issue 15, item 2).

``record_completion`` on a MemoryStore, without history and with a
``BigQueryRunHistory`` whose BigQuery client never answers (a black hole):
the buffer fills to its bound, then every further row is dropped and
counted. Runs alternate in the same process; the ratio of median latencies
(with / without) is printed and should stay within 1.1.

Run: ``python benchmarks/history.py [--quick]``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import threading
import time
from typing import Any

from pipeline_reliability import MemoryStore
from pipeline_reliability.completion import CompletionTracker, PhaseSpec
from pipeline_reliability.sinks import BigQueryRunHistory

PROCESSORS = [f"proc_{i}" for i in range(5)]


class BlackHoleClient:
    """A BigQuery client whose inserts never return."""

    project = "bench"

    def __init__(self) -> None:
        self.never = threading.Event()

    def insert_rows_json(self, *args: Any, **kwargs: Any) -> list[Any]:  # noqa: ARG002
        self.never.wait()
        return []


def _tracker(history: BigQueryRunHistory | None) -> CompletionTracker:
    return CompletionTracker(MemoryStore(), [PhaseSpec("p", set(PROCESSORS))], history=history)


def _run(tracker: CompletionTracker, dates: int, offset: int) -> list[float]:
    """Seconds per record_completion over ``dates`` dates x every processor (+1 duplicate)."""
    times: list[float] = []
    for d in range(dates):
        day = f"2026-{1 + (offset + d) // 28 % 12:02d}-{1 + (offset + d) % 28:02d}"
        for name in [*PROCESSORS, PROCESSORS[0]]:
            start = time.perf_counter()
            tracker.record_completion("p", day, name, execution_id=f"r{offset}")
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="a short run (CI smoke)")
    args = parser.parse_args()
    logging.getLogger("pipeline_reliability").setLevel(logging.ERROR)  # drops are logged
    rounds, dates = (6, 20) if args.quick else (20, 60)

    client = BlackHoleClient()
    history = BigQueryRunHistory("ds.run_history", client, max_pending=100)
    plain, observed = _tracker(None), _tracker(history)
    _run(plain, 5, 10_000)  # warm-up
    _run(observed, 5, 10_000)
    base: list[float] = []
    with_history: list[float] = []
    for r in range(rounds):
        # Alternate which goes first, so drift in the machine's speed hits both.
        order = [(plain, base), (observed, with_history)]
        for tracker, sink in order if r % 2 == 0 else order[::-1]:
            sink.extend(_run(tracker, dates, r * dates))
    ratio = statistics.median(with_history) / statistics.median(base)
    print(f"record_completion median without history: {statistics.median(base) * 1e6:8.1f} us")
    print(f"record_completion median, black-holed history: "
          f"{statistics.median(with_history) * 1e6:8.1f} us")
    print(f"rows held (bound): {history.pending} ({history.max_pending}), "
          f"dropped and counted: {history.dropped}")
    print(f"ratio (black-holed history / none): {ratio:.3f} (target <= 1.1)")
    client.never.set()


if __name__ == "__main__":
    main()
