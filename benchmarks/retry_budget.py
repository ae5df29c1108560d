"""
Load multiplication during an outage, with and without a retry budget (issue 12).

A dependency that fails every call for a stretch is hit by steady traffic
(``--rate`` calls per second) through ``RetryPolicy(attempts=5)``: without a
budget every call makes its 5 attempts, so the sick dependency meets 5x its
load; with ``budget=0.2`` retries are capped at 20 % of the calls of the
budget's 10 s window. Time is a FakeClock moved between calls and testing
mode removes sleeps, so the run is exact and takes a second, whatever the
simulated duration.

Printed, for each policy: attempts reaching the dependency / calls during the
outage, the worst 10 s window of the outage, and over the whole run. Goal
with the budget: <= 1.2x.

Run: ``python benchmarks/retry_budget.py [--quick]``.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field

from pipeline_reliability.errors import RetryExhaustedError
from pipeline_reliability.retry import RetryBudget, RetryPolicy, set_testing
from pipeline_reliability.testing import FakeClock

ATTEMPTS = 5
RATIO = 0.2
WINDOW = 10.0


class Dependency:
    """Fails every attempt while ``down``; remembers when each attempt arrived."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.down = False
        self.arrivals: list[float] = []

    def __call__(self) -> str:
        self.arrivals.append(self.clock.monotonic())
        if self.down:
            raise ConnectionError("dependency unavailable")
        return "ok"


@dataclass
class Result:
    """Attempts and calls of one simulated run, timestamped."""

    calls: list[float] = field(default_factory=list)
    attempts: list[float] = field(default_factory=list)
    failed: int = 0

    def ratio(self, start: float, end: float) -> float:
        calls = sum(start <= t < end for t in self.calls)
        attempts = sum(start <= t < end for t in self.attempts)
        return attempts / calls if calls else 0.0

    def worst_window(self, start: float, end: float, step: float) -> float:
        worst, t = 0.0, start
        while t + WINDOW <= end:
            worst = max(worst, self.ratio(t, t + WINDOW))
            t += step
        return worst


def simulate(budget: RetryBudget | None, rate: int, phases: tuple[float, float, float]) -> Result:
    """Healthy, outage, healthy: ``rate`` calls per second through one shared policy."""
    clock = FakeClock()
    dependency = Dependency(clock)
    policy = RetryPolicy(attempts=ATTEMPTS, deadline=None, clock=clock, budget=budget)
    result = Result()
    healthy, outage, recovery = phases
    total = int((healthy + outage + recovery) * rate)
    with set_testing(True):
        for n in range(total):
            now = n / rate
            clock.advance(now - clock.monotonic())
            dependency.down = healthy <= now < healthy + outage
            result.calls.append(now)
            try:
                policy.call(dependency)
            except RetryExhaustedError:
                result.failed += 1
    result.attempts = dependency.arrivals
    return result


def main() -> None:
    """Print the load multiplication with and without a budget, from the same traffic."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="a shorter outage")
    parser.add_argument("--rate", type=int, default=50, help="calls per second")
    args = parser.parse_args()
    phases = (20.0, 60.0, 20.0) if args.quick else (30.0, 300.0, 30.0)
    healthy, outage, _ = phases
    start, end = healthy, healthy + outage
    # Every retry logs a WARNING and every failure an ERROR: thousands of lines here.
    logging.getLogger("pipeline_reliability.retry").disabled = True
    runs = {
        "no budget": simulate(None, args.rate, phases),
        f"budget={RATIO}": simulate(RetryBudget(RATIO, window=WINDOW), args.rate, phases),
    }
    print(
        f"retry budget: load on a dependency down for {outage:.0f}s of {sum(phases):.0f}s, "
        f"{args.rate} calls/s, attempts={ATTEMPTS}, window {WINDOW:.0f}s"
    )
    print(f"  {'policy':<14} {'outage':>8} {'worst 10s':>10} {'whole run':>10} {'failed':>8}")
    for name, r in runs.items():
        print(
            f"  {name:<14} {r.ratio(start, end):>7.3f}x {r.worst_window(start, end, 1.0):>9.3f}x "
            f"{r.ratio(0.0, sum(phases)):>9.3f}x {r.failed:>8,}"
        )
    with_budget = runs[f"budget={RATIO}"]
    ratio = with_budget.ratio(start, end)
    print(f"  load multiplication during the outage with a budget {ratio:.3f}x  (goal <= 1.2)")
    print(
        f"  without a budget {runs['no budget'].ratio(start, end):.3f}x: "
        f"the budget removes {1 - (ratio - 1) / (ATTEMPTS - 1):.0%} of the extra load"
    )


if __name__ == "__main__":
    main()
