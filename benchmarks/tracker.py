"""
Benchmark of the completion tracker on the embedded MemoryStore, as costs and
ratios measured in one run.

1. Store operations per call: a first completion, a duplicate delivery (the
   target is 0 writes), an unknown name, and the last completion that claims
   the trigger plus its confirmation.
2. Throughput of a backfill: 100 dates x 5 processors recorded through
   ``record_and_trigger`` (one trigger published and confirmed per date),
   against the raw ``store.transact`` read-modify-write rate over the same
   500 (date, processor) pairs, measured interleaved in the same run. The
   raw baseline is one ``transact`` per pair whose callback copies the date's
   document and sets ``{processor: True}``: a document of at most five
   booleans, no logic, no pre-read, no trigger. A second baseline rewrites
   documents of the tracker's own size, step by step (the tracker's document
   after each of its completions: five records of 13 fields, rings, meta,
   trigger; ~2 KB), so the part of the gap that is MemoryStore copying and
   validating a bigger document is shown apart from the tracker's own logic.
   Per completion the tracker makes one read (the duplicate check, which is
   also its transaction's first attempt) and one write, plus one confirming
   transaction per date.

3. On the Firestore emulator (only when ``FIRESTORE_EMULATOR_HOST`` is set,
   else reported as skipped): first completions and duplicate deliveries
   against the raw ``store.transact`` read-modify-write rate, wall time,
   interleaved. Goals (issue 13): duplicates >= 1.5x raw (a duplicate that a
   plain read proves needs no transaction), first completions >= 0.8x raw.

Times are CPU time of the benchmarking thread (``time.thread_time``), so a
busy machine slows both sides alike instead of adding noise (the emulator
section uses wall time: the work is in the emulator).

Run: ``python benchmarks/tracker.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from pipeline_reliability import MemoryStore, Outcome, Put, Snapshot
from pipeline_reliability.completion import CompletionTracker, PhaseSpec, TriggerEvent

PROCESSORS = (
    "player_game_summary",
    "team_defense_game_summary",
    "team_offense_game_summary",
    "upcoming_player_game_context",
    "upcoming_team_game_context",
)
PHASE = "phase3"


def _dates(n: int) -> list[str]:
    start = date(2025, 10, 21)
    return [(start + timedelta(days=i)).isoformat() for i in range(n)]


def _tracker(store: MemoryStore) -> CompletionTracker:
    return CompletionTracker(store, [PhaseSpec(PHASE, PROCESSORS)], owner="bench")


def _ops(store: MemoryStore, call: Callable[[], Any]) -> tuple[int, int]:
    store.reset_stats()
    call()
    stats = store.stats
    return stats.reads, stats.writes


def operation_costs() -> list[tuple[str, int, int]]:
    """Reads and writes of each kind of call, on a fresh store."""
    store = MemoryStore()
    tracker = _tracker(store)
    day = "2026-01-31"
    first, *rest = PROCESSORS
    rows = [
        (
            "first completion",
            *_ops(
                store,
                lambda: tracker.record_completion(
                    PHASE, day, first, execution_id="r1", message_id="m1"
                ),
            ),
        ),
        (
            "duplicate (same execution)",
            *_ops(store, lambda: tracker.record_completion(PHASE, day, first, execution_id="r1")),
        ),
        (
            "duplicate (same message id)",
            *_ops(
                store,
                lambda: tracker.record_completion(
                    PHASE, day, first, execution_id="r1b", message_id="m1"
                ),
            ),
        ),
        (
            "unknown processor",
            *_ops(
                store,
                lambda: tracker.record_completion(
                    PHASE, day, "PlayerGameSummaryProcessor", execution_id="r1"
                ),
            ),
        ),
    ]
    for name in rest[:-1]:
        tracker.record_completion(PHASE, day, name, execution_id="r1")
    claims: list[Any] = []
    rows.append(
        (
            "last completion (claims)",
            *_ops(
                store,
                lambda: claims.append(
                    tracker.record_completion(PHASE, day, rest[-1], execution_id="r1").trigger
                ),
            ),
        )
    )
    rows.append(("confirm_trigger", *_ops(store, lambda: tracker.confirm_trigger(claims[0]))))
    rows.append(
        (
            "duplicate after trigger",
            *_ops(store, lambda: tracker.record_completion(PHASE, day, first, execution_id="r1")),
        )
    )
    return rows


def backfill_tracker(dates: list[str]) -> float:
    """Seconds to record every (date, processor) through record_and_trigger."""
    store = MemoryStore()
    tracker = _tracker(store)
    published: list[TriggerEvent] = []
    start = time.thread_time()
    for day in dates:
        for name in PROCESSORS:
            tracker.record_and_trigger(
                PHASE, day, name, execution_id=f"{name}-{day}", publish=published.append
            )
    elapsed = time.thread_time() - start
    assert len(published) == len(dates), "one trigger per date"
    return elapsed


def backfill_raw(dates: list[str]) -> float:
    """Seconds for the bare read-modify-write of the same pairs (the baseline)."""
    store = MemoryStore()
    start = time.thread_time()
    for day in dates:
        for name in PROCESSORS:

            def add(snap: Snapshot, name: str = name) -> Outcome[None]:
                data = dict(snap.data or {})
                data[name] = True
                return Outcome(None, Put(data))

            store.transact("raw", day, add)
    return time.thread_time() - start


def tracker_documents(dates: list[str]) -> dict[tuple[str, int], dict[str, Any]]:
    """The tracker's document of each date after each of its completions (setup, untimed)."""
    store = MemoryStore()
    tracker = _tracker(store)
    docs = {}
    for day in dates:
        for i, name in enumerate(PROCESSORS):
            tracker.record_and_trigger(
                PHASE, day, name, execution_id=f"{name}-{day}", publish=lambda _e: None
            )
            docs[day, i] = store.get(f"completion_{PHASE}", day).data or {}
    return docs


def backfill_same_size(dates: list[str], docs: dict[tuple[str, int], dict[str, Any]]) -> float:
    """Seconds to read-modify-write the tracker's documents, step by step, with no logic."""
    store = MemoryStore()
    start = time.thread_time()
    for day in dates:
        for i in range(len(PROCESSORS)):

            def put(_snap: Snapshot, key: tuple[str, int] = (day, i)) -> Outcome[None]:
                return Outcome(None, Put(docs[key]))

            store.transact("raw", day, put)
    return time.thread_time() - start


def firestore_rates(n: int, rounds: int) -> dict[str, float] | None:
    """Operations per second on the emulator, best of ``rounds``; ``None`` without one."""
    if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        return None
    from pipeline_reliability.stores.firestore import FirestoreStore

    store = FirestoreStore(project=f"bench-{uuid.uuid4().hex[:8]}")
    try:
        tracker = CompletionTracker(store, [PhaseSpec(PHASE, PROCESSORS)], owner="bench")
        days = _dates(n)
        best = {"raw": 0.0, "first": 0.0, "duplicate": 0.0}

        def add(snap: Snapshot) -> Outcome[None]:
            data = dict(snap.data or {})
            data[f"k{len(data)}"] = True
            return Outcome(None, Put(data))

        for r in range(rounds):
            start = time.perf_counter()
            for day in days:
                store.transact(f"raw{r}", day, add)
            best["raw"] = max(best["raw"], n / (time.perf_counter() - start))
            name = PROCESSORS[r % len(PROCESSORS)]
            start = time.perf_counter()
            for day in days:  # a first completion of `name` for each date
                tracker.record_completion(PHASE, day, name, execution_id=f"{name}-{day}")
            best["first"] = max(best["first"], n / (time.perf_counter() - start))
            start = time.perf_counter()
            for day in days:  # the same deliveries again
                result = tracker.record_completion(PHASE, day, name, execution_id=f"{name}-{day}")
                assert result.duplicate
            best["duplicate"] = max(best["duplicate"], n / (time.perf_counter() - start))
        return best
    finally:
        store.close()


def main() -> None:
    """Print the cost table and the backfill ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="fewer dates and rounds")
    args = parser.parse_args()
    n_dates, rounds = (20, 3) if args.quick else (100, 7)

    print("store operations per call (MemoryStore)")
    print(f"  {'call':<30} {'reads':>5} {'writes':>6}")
    for name, reads, writes in operation_costs():
        print(f"  {name:<30} {reads:>5} {writes:>6}")

    dates = _dates(n_dates)
    docs = tracker_documents(dates)
    ours: list[float] = []
    raw: list[float] = []
    same: list[float] = []
    for _ in range(rounds):  # interleaved, so that machine load hits all alike
        ours.append(backfill_tracker(dates))
        raw.append(backfill_raw(dates))
        same.append(backfill_same_size(dates, docs))
    n = n_dates * len(PROCESSORS)
    ours_rate, raw_rate, same_rate = n / min(ours), n / min(raw), n / min(same)
    print(
        f"\nbackfill: {n_dates} dates x {len(PROCESSORS)} processors = {n} completions, "
        f"best of {rounds} rounds"
    )
    print(
        f"  tracker (record_and_trigger)  {ours_rate:>10,.0f} completions/s "
        f"(median {n / statistics.median(ours):,.0f})"
    )
    print(
        f"  raw store.transact RMW        {raw_rate:>10,.0f} writes/s "
        f"(median {n / statistics.median(raw):,.0f})"
    )
    print(
        f"  raw RMW, tracker-sized doc    {same_rate:>10,.0f} writes/s "
        f"(median {n / statistics.median(same):,.0f})"
    )
    print(f"  ratio tracker / raw           {ours_rate / raw_rate:>10.3f}  (goal >= 0.3)")
    print(f"  ratio tracker / same-size raw {ours_rate / same_rate:>10.3f}")
    print(
        f"  tracker CPU per completion    {min(ours) / n * 1e6:>10.0f} us "
        "(incl. 1 publish + confirm per 5)"
    )

    rates = firestore_rates(*((10, 3) if args.quick else (40, 5)))
    if rates is None:
        print("\nFirestore emulator: skipped (FIRESTORE_EMULATOR_HOST is not set)")
        return
    print("\nFirestore emulator: operations/s, best of rounds (wall time)")
    print(f"  raw store.transact RMW        {rates['raw']:>10,.0f}")
    print(f"  tracker first completion      {rates['first']:>10,.0f}")
    print(f"  tracker duplicate delivery    {rates['duplicate']:>10,.0f}")
    print(f"  ratio first / raw             {rates['first'] / rates['raw']:>10.3f}  (goal >= 0.8)")
    dup = rates["duplicate"] / rates["raw"]
    print(f"  ratio duplicate / raw         {dup:>10.3f}  (goal >= 1.5)")


if __name__ == "__main__":
    main()
