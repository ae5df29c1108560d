"""
Benchmark of the shared circuit breaker (DESIGN F6), as ratios measured in one run.

1. The production scenario: 11 workers x 255 calls (threads, each with its own
   breaker instance over one MemoryStore, on a simulated 4-minute clock).
   A healthy run, and a run with a downstream outage in the middle, against a
   "reset the failure counter on every success" baseline over the same store.
2. Per-call overhead in the CLOSED steady state against a bare call and
   against ``pybreaker.CircuitBreaker`` (memory storage), and the cost of a
   rejection in the OPEN state.
3. The per-call overhead of each breaker policy of issue 12 (failure rate over
   a count or a time window, slow calls, ``failure_if``), CLOSED state,
   successful calls, as a ratio to the default breaker's overhead.

Run: ``python benchmarks/breaker.py [--quick]``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pipeline_reliability import CircuitOpenError, MemoryStore, Outcome, Put, Snapshot
from pipeline_reliability.breaker import BreakerEvent, CircuitBreaker, TransitionEvent
from pipeline_reliability.testing import FakeClock

WORKERS = 11
CALLS = 255
INCIDENT_SECONDS = 240.0  # the production incident: 1,785 writes in 4 minutes
TICK = INCIDENT_SECONDS / CALLS
OUTAGE = range(85, 170)  # calls (per worker) during which the downstream fails
THRESHOLD, WINDOW, RESET, CACHE = 5, 60.0, 30.0, 5.0


class DownstreamError(Exception):
    """The downstream is down."""


# ---------------------------------------------------------------- 1. production scenario


class ResetOnSuccessBreaker:
    """
    The baseline: the shared breaker this library replaces. It keeps the
    failure count in the store, reads it on every call and writes it on every
    outcome: reset to 0 on each success, incremented on each failure.
    """

    collection = "naive_breakers"

    def __init__(self, store: MemoryStore, name: str) -> None:
        self.store = store
        self.name = name

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` unless the stored state says open."""
        snap = self.store.get(self.collection, self.name)
        data = snap.data or {}
        opened_at = data.get("opened_at")
        if opened_at is not None and snap.now - opened_at < timedelta(seconds=RESET):
            raise CircuitOpenError(self.name, "open")
        try:
            result = fn()
        except Exception:
            self.store.transact(self.collection, self.name, self._failed)
            raise
        self.store.transact(self.collection, self.name, self._succeeded)
        return result

    @staticmethod
    def _succeeded(_snap: Snapshot) -> Outcome[None]:
        return Outcome(None, Put({"failure_count": 0, "opened_at": None}))

    @staticmethod
    def _failed(snap: Snapshot) -> Outcome[None]:
        count = (snap.data or {}).get("failure_count", 0) + 1
        opened = snap.now if count >= THRESHOLD else (snap.data or {}).get("opened_at")
        return Outcome(None, Put({"failure_count": count, "opened_at": opened}))


@dataclass
class FleetRun:
    """What one run of the fleet did."""

    label: str
    writes: int
    reads: int
    transitions: int
    downstream_calls: int
    rejected: int
    seconds: float


def run_fleet(
    label: str, store: MemoryStore, clock: FakeClock, make: Callable[[int], Any], *,
    outage: bool,
) -> FleetRun:
    """Run WORKERS threads x CALLS calls in lock-step rounds of TICK simulated seconds."""
    store.reset_stats()
    barrier = threading.Barrier(WORKERS, action=lambda: clock.advance(TICK))
    lock = threading.Lock()
    totals = {"downstream": 0, "rejected": 0}
    transitions: list[BreakerEvent] = []

    def up() -> str:
        return "ok"

    def down() -> str:
        raise DownstreamError

    def worker(index: int) -> None:
        breaker = make(index)
        if isinstance(breaker, CircuitBreaker):
            breaker.add_listener(transitions.append)
        downstream = rejected = 0
        for n in range(CALLS):
            fn = down if outage and n in OUTAGE else up
            try:
                breaker.call(fn)
                downstream += 1
            except DownstreamError:
                downstream += 1
            except CircuitOpenError:
                rejected += 1
            barrier.wait()
        with lock:
            totals["downstream"] += downstream
            totals["rejected"] += rejected

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    stats = store.stats
    local = sum(1 for e in transitions if isinstance(e, TransitionEvent) and e.local)
    return FleetRun(label, stats.writes, stats.reads, local, totals["downstream"],
                    totals["rejected"], seconds)


def production_scenario() -> list[FleetRun]:
    """The four runs: {healthy, outage} x {this library, reset-on-success baseline}."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    runs = []
    for outage in (False, True):
        name = f"downstream-{'outage' if outage else 'healthy'}"

        def ours(i: int, name: str = name) -> CircuitBreaker:
            return CircuitBreaker(
                name, store, failure_threshold=THRESHOLD, window=WINDOW,
                reset_timeout=RESET, cache_ttl=CACHE, clock=clock, instance_id=f"worker-{i}",
            )

        def naive(_index: int, name: str = name) -> ResetOnSuccessBreaker:
            return ResetOnSuccessBreaker(store, name)

        kind = "outage " if outage else "healthy"
        runs.append(run_fleet(f"{kind}  pipeline_reliability", store, clock, ours,
                              outage=outage))
        runs.append(run_fleet(f"{kind}  reset-on-success", store, clock, naive,
                              outage=outage))
    return runs


def print_production(runs: list[FleetRun]) -> bool:
    """Print the fleet table and the ratios; return whether the F6 claims held."""
    print(f"1. Production scenario: {WORKERS} workers x {CALLS} calls, one shared MemoryStore, "
          f"{INCIDENT_SECONDS:.0f} s simulated; outage = calls {OUTAGE.start}-{OUTAGE.stop - 1}")
    print(f"   breaker: failure_threshold={THRESHOLD}, window={WINDOW:.0f}s, "
          f"reset_timeout={RESET:.0f}s, cache_ttl={CACHE:.0f}s")
    header = (f"   {'run':<32}{'writes':>8}{'reads':>8}{'transitions':>13}"
              f"{'downstream':>12}{'rejected':>10}{'wall s':>8}")
    print(header)
    for r in runs:
        transitions = "-" if "reset-on" in r.label else str(r.transitions)
        print(f"   {r.label:<32}{r.writes:>8}{r.reads:>8}{transitions:>13}"
              f"{r.downstream_calls:>12}{r.rejected:>10}{r.seconds:>8.2f}")
    healthy, healthy_naive, outage, outage_naive = runs
    print(f"   healthy: {healthy.writes} writes vs {healthy_naive.writes} "
          f"({'no writes at all' if healthy.writes == 0 else 'UNEXPECTED'}); "
          f"reads {healthy.reads / healthy_naive.reads:.3f}x the baseline's")
    ratio = outage_naive.writes / outage.writes if outage.writes else float("inf")
    print(f"   outage:  {outage.writes} writes = {outage.transitions} transitions "
          f"({'equal' if outage.writes == outage.transitions else 'NOT EQUAL'}) vs "
          f"{outage_naive.writes} for the baseline: {ratio:.0f}x fewer")
    return healthy.writes == 0 and 0 < outage.writes == outage.transitions


# ---------------------------------------------------------------- 2. per-call overhead


def _loop(fn: Callable[[], Any], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - started


def _rejections(fn: Callable[[], Any], n: int, error: type[BaseException]) -> float:
    started = time.perf_counter()
    for _ in range(n):
        try:  # noqa: SIM105  (contextlib.suppress would add its own cost to every call)
            fn()
        except error:
            pass
    return time.perf_counter() - started


def overhead(n: int, repeats: int) -> None:
    """Measure ns per call, interleaving variants so that machine noise hits them alike."""
    pybreaker = _optional_pybreaker()

    def target() -> int:
        return 1

    ours = CircuitBreaker("overhead", MemoryStore(), cache_ttl=5.0)
    decorated = ours(target)
    variants: dict[str, Callable[[], float]] = {
        # Every variant is one outer call around target(), so the outer layer cancels out.
        "bare call": lambda: _loop(lambda: target(), n),  # noqa: PLW0108
        "pipeline_reliability .call": lambda: _loop(lambda: ours.call(target), n),
        "pipeline_reliability @decorator": lambda: _loop(decorated, n),
    }
    rejecting = CircuitBreaker("overhead-open", MemoryStore(), cache_ttl=5.0)
    rejecting.force_open()
    tripped = _tripped_breaker()
    rejection_variants: dict[str, Callable[[], float]] = {
        # The floor: raising and catching a new exception, nothing else.
        "bare raise of a new exception": lambda: _rejections(_raise_bare, n, RuntimeError),
        "pipeline_reliability OPEN (tripped)": lambda: _rejections(
            lambda: tripped.call(target), n, CircuitOpenError),
        "pipeline_reliability OPEN (forced)": lambda: _rejections(
            lambda: rejecting.call(target), n, CircuitOpenError),
    }
    circuitbreaker = _optional("circuitbreaker")
    if circuitbreaker is not None:
        peer = circuitbreaker.CircuitBreaker(failure_threshold=1, recovery_timeout=3600)
        guarded = peer.decorate(_down)
        with contextlib.suppress(RuntimeError):
            guarded()  # one failure opens it
        rejection_variants["circuitbreaker OPEN"] = lambda: _rejections(
            guarded, n, circuitbreaker.CircuitBreakerError)
    if pybreaker is not None:
        theirs = pybreaker.CircuitBreaker(fail_max=THRESHOLD, reset_timeout=RESET)
        variants["pybreaker .call (memory)"] = lambda: _loop(lambda: theirs.call(target), n)
        theirs_open = pybreaker.CircuitBreaker(fail_max=THRESHOLD, reset_timeout=3600)
        theirs_open.open()
        rejection_variants["pybreaker OPEN"] = lambda: _rejections(
            lambda: theirs_open.call(target), n, pybreaker.CircuitBreakerError)

    best = _best_of(variants, repeats, n)
    best_rejections = _best_of(rejection_variants, repeats, n)
    base = best["bare call"]
    print(f"\n2. Per-call cost, CLOSED steady state (best of {repeats} x {n:,} calls, ns/call)")
    for label, ns in best.items():
        extra = "" if label == "bare call" else f"   overhead {ns - base:7.0f}"
        print(f"   {label:<34}{ns:8.0f}{extra}")
    ours_overhead = best["pipeline_reliability .call"] - base
    if pybreaker is None:
        print("   pybreaker is not installed: no comparison (pip install pybreaker)")
    else:
        theirs_overhead = best["pybreaker .call (memory)"] - base
        print(f"   overhead ratio pipeline_reliability / pybreaker = "
              f"{ours_overhead / theirs_overhead:.2f}x (goal <= 1.0x), while shared across "
              f"processes (pybreaker here is process-local)")
    print(f"\n   OPEN state, a rejected call (ns/call, best of {repeats} x {n:,})")
    for label, ns in best_rejections.items():
        print(f"   {label:<40}{ns:8.0f}")
    ours_open = best_rejections["pipeline_reliability OPEN (tripped)"]
    floor = best_rejections["bare raise of a new exception"]
    print(f"   rejection / bare raise = {ours_open / floor:.2f}x (goal <= 2x)")
    for peer_label in ("circuitbreaker OPEN", "pybreaker OPEN"):
        if peer_label in best_rejections:
            print(f"   rejection / {peer_label} = {ours_open / best_rejections[peer_label]:.2f}x")


# The policies of issue 12, each as CircuitBreaker options.
POLICIES: dict[str, dict[str, Any]] = {
    "failure rate, count window": {"failure_rate": 0.5, "window_size": 100},
    "failure rate, time window": {"failure_rate": 0.5, "window_type": "time",
                                  "window_size": 60.0},
    "slow calls": {"slow_call_duration": 10.0},
    "failure_if": {"failure_if": lambda result: result is None},
}


# What a policy cannot avoid, measured alone in the same run: slow calls read
# the clock once more (the end of the call); failure_if calls the user's predicate.
INHERENT: dict[str, str] = {"slow calls": "one clock read", "failure_if": "one predicate call"}


def policy_overhead(n: int, repeats: int) -> None:
    """
    Each policy's CLOSED overhead as a ratio to the default breaker's (goal <= 1.2x).

    For the two policies whose work is a measurement the breaker cannot skip
    (a second clock read; the user's own predicate), the ratio is also printed
    net of that measurement, timed bare in the same run.
    """

    def target() -> int:
        return 1

    predicate = POLICIES["failure_if"]["failure_if"]
    monotonic = time.monotonic

    def through(breaker: CircuitBreaker) -> Callable[[], float]:
        return lambda: _loop(lambda: breaker.call(target), n)

    variants: dict[str, Callable[[], float]] = {
        "bare call": lambda: _loop(lambda: target(), n),  # noqa: PLW0108
        "one clock read": lambda: _loop(lambda: (target(), monotonic()), n),
        "one predicate call": lambda: _loop(lambda: predicate(target()), n),
        "default breaker": through(CircuitBreaker("policy-default", MemoryStore())),
    }
    for label, options in POLICIES.items():
        variants[label] = through(CircuitBreaker(f"policy-{label}", MemoryStore(), **options))
    best = _best_of(variants, repeats, n)
    base = best["bare call"]
    default = best["default breaker"] - base
    print(f"\n3. Breaker policies, CLOSED, successful calls (best of {repeats} x {n:,}, ns/call)")
    for label, ns in best.items():
        if label in ("bare call", "one clock read", "one predicate call"):
            print(f"   {label:<34}{ns:8.0f}")
            continue
        line = (f"   {label:<34}{ns:8.0f}   overhead {ns - base:5.0f}   "
                f"ratio to the default breaker {(ns - base) / default:5.2f}x (goal <= 1.2x)")
        if label in INHERENT:
            cost = best[INHERENT[label]] - base
            line += f"; net of {INHERENT[label]} {(ns - base - cost) / default:5.2f}x"
        print(line)


def _optional_pybreaker() -> Any:
    """pybreaker if installed (it is in the bench session), else None."""
    return _optional("pybreaker")


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        print(f"   ({module} is not installed: no comparison with it)")
        return None


def _raise_bare() -> None:
    raise RuntimeError("open")


def _down() -> None:
    raise RuntimeError("the downstream is down")


def _tripped_breaker() -> CircuitBreaker:
    """A breaker opened by real failures (the outage path), not by force_open()."""
    breaker = CircuitBreaker("overhead-tripped", MemoryStore(), failure_threshold=3,
                             minimum_calls=3, reset_timeout=3600.0, cache_ttl=5.0)
    for _ in range(3):
        with contextlib.suppress(RuntimeError):
            breaker.call(_down)
    assert breaker.state.value == "open", breaker.state
    return breaker


def _best_of(variants: dict[str, Callable[[], float]], repeats: int, n: int) -> dict[str, float]:
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(repeats):
        for label, run in variants.items():
            best[label] = min(best[label], run() / n * 1e9)
    return best


def main() -> int:
    """Run both parts; exit status 1 if the write claims of part 1 did not hold."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (CI smoke run)")
    args = parser.parse_args()
    # The breakers log their transitions; the tables below are the output here.
    logging.basicConfig(level=logging.ERROR)
    held = print_production(production_scenario())
    if args.quick:
        overhead(n=20_000, repeats=3)
        policy_overhead(n=20_000, repeats=3)
    else:
        overhead(n=200_000, repeats=7)
        policy_overhead(n=200_000, repeats=7)
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
