"""
Benchmark of retries on the success path (issue 13), as ratios measured in one run.

Nearly every retried call succeeds at once, so what a retry library costs is
mostly what it costs when it does nothing. Measured: the overhead above a bare
call of

1. ``@retry_transient()`` against tenacity's ``@retry``, a pre-built tenacity
   ``Retrying`` object, and ``backoff.on_exception`` (when installed);
2. the ``for attempt in retrying(): with attempt:`` block against tenacity's
   ``for attempt in Retrying(): with attempt:``;
3. both again with a retry budget (issue 12), whose only cost on success is
   counting the call in the budget's ring of counters.

Rounds are interleaved and the best of each is kept, so machine load hits all
alike. Goals: decorator <= 0.05x tenacity ``@retry``; block <= 0.1x tenacity's.

Run: ``python benchmarks/retry.py [--quick]``.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from typing import Any

import tenacity

from pipeline_reliability.retry import RetryBudget, RetryPolicy, retry_transient, retrying

backoff: Any
try:
    import backoff
except ImportError:  # only in the bench session's dependency group
    backoff = None


def bare() -> int:
    """The function every contender wraps."""
    return 1


def contenders() -> dict[str, Callable[[], Any]]:
    """Name -> a zero-argument callable that runs one successful call."""
    prebuilt = tenacity.Retrying()
    # A budget is shared state: it is built once, with its policy, as users would.
    budgeted = RetryPolicy(budget=RetryBudget(ratio=0.2))

    def ours_block() -> None:
        for attempt in retrying():
            with attempt:
                bare()

    def ours_budget_block() -> None:
        for attempt in retrying(budgeted):
            with attempt:
                bare()

    def tenacity_block() -> None:
        for attempt in tenacity.Retrying():
            with attempt:
                bare()

    out: dict[str, Callable[[], Any]] = {
        "bare call": bare,
        "retry_transient()": retry_transient()(bare),
        "tenacity @retry": tenacity.retry(bare),
        "tenacity Retrying (pre-built)": lambda: prebuilt(bare),
        "retrying() block": ours_block,
        "tenacity block": tenacity_block,
        "retry_transient(budget=0.2)": retry_transient(budget=0.2)(bare),
        "retrying(budgeted) block": ours_budget_block,
    }
    if backoff is not None:
        out["backoff.on_exception"] = backoff.on_exception(backoff.expo, Exception)(bare)
    return out


def measure(rounds: int, number: int) -> dict[str, float]:
    """Best time per call in ns for every contender, rounds interleaved."""
    calls = contenders()
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, fn in calls.items():
            best[name] = min(best[name], timeit.timeit(fn, number=number) / number * 1e9)
    return best


def main() -> None:
    """Print the overhead table and the ratios against the goals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="fewer calls and rounds")
    args = parser.parse_args()
    rounds, number = (3, 5_000) if args.quick else (5, 50_000)
    ns = measure(rounds, number)
    floor = ns.pop("bare call")
    over = {name: max(t - floor, 0.0) for name, t in ns.items()}
    print(
        f"retry on the success path: overhead above a bare call ({floor:.0f} ns), best of "
        f"{rounds} rounds x {number:,} calls"
    )
    for name, value in over.items():
        print(f"  {name:<32} {value:>10,.0f} ns")
    if backoff is None:
        print("  backoff.on_exception              skipped (backoff not installed)")
    dec = over["retry_transient()"] / over["tenacity @retry"]
    pre = over["retry_transient()"] / over["tenacity Retrying (pre-built)"]
    block = over["retrying() block"] / over["tenacity block"]
    print(f"  ratio retry_transient / tenacity @retry        {dec:>7.3f}  (goal <= 0.05)")
    print(f"  ratio retry_transient / tenacity pre-built     {pre:>7.3f}")
    if backoff is not None:
        vs = over["retry_transient()"] / max(over["backoff.on_exception"], 1e-9)
        print(f"  ratio retry_transient / backoff               {vs:>7.3f}")
    print(f"  ratio retrying() block / tenacity block        {block:>7.3f}  (goal <= 0.10)")
    dec_b = over["retry_transient(budget=0.2)"] / over["tenacity @retry"]
    block_b = over["retrying(budgeted) block"] / over["tenacity block"]
    print(f"  with a budget: retry_transient / tenacity @retry {dec_b:>5.3f}  (goal <= 0.05)")
    print(f"  with a budget: retrying() block / tenacity block {block_b:>5.3f}  (goal <= 0.10)")


if __name__ == "__main__":
    main()
