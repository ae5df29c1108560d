"""Property tests: delays stay within [0, cap] and the total never passes the deadline."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st
from retry_helpers import gexc

from pipeline_reliability.errors import CircuitOpenError, RetryExhaustedError
from pipeline_reliability.retry import RetryPolicy
from pipeline_reliability.retry._backoff import next_delay
from pipeline_reliability.testing import FakeClock

EPS = 1e-9


@st.composite
def policies(draw: st.DrawFn) -> RetryPolicy:
    """Arbitrary valid policies (the clock is attached by the test)."""
    initial = draw(st.floats(0.0, 100.0))
    return RetryPolicy(
        attempts=draw(st.integers(1, 40)),
        # Mostly short deadlines, so that sleeps often have to be truncated.
        deadline=draw(st.none() | st.floats(0.001, 20.0) | st.floats(0.001, 10_000.0)),
        initial=initial,
        maximum=initial + draw(st.floats(0.0, 10.0) | st.floats(0.0, 1_000.0)),
        multiplier=draw(st.floats(1.0, 10.0)),
    )


@dataclass(frozen=True)
class Step:
    """One attempt of the scripted operation."""

    outcome: str  # "ok" | "transient" | "hinted" | "permanent"
    takes: float  # seconds the attempt itself lasts
    hint: float | None  # retry_after of a "hinted" failure


steps = st.builds(
    Step,
    outcome=st.sampled_from(["ok", "transient", "transient", "hinted", "permanent"]),
    takes=st.floats(0.0, 5.0) | st.floats(0.0, 50.0),
    hint=st.none() | st.floats(0.0, 2_000.0),
)


@given(
    policy=policies(),
    retry_number=st.integers(0, 12) | st.integers(0, 10_000),
    progress=st.floats(0.0, 1.5),
    suggested=st.none() | st.floats(0.0, 100.0) | st.floats(0.0, 1e6),
    jitter=st.sampled_from([min, max, random.uniform]),
)
def test_every_computed_delay_is_within_cap_and_deadline(
    policy: RetryPolicy,
    retry_number: int,
    progress: float,
    suggested: float | None,
    jitter: Callable[[float, float], float],
) -> None:
    """next_delay is in [0, maximum] and ends no later than the deadline, or says stop."""
    # How far into the deadline the call already is (or into 100 s without one).
    elapsed = (policy.deadline_seconds or 100.0) * progress
    delay = next_delay(
        policy, retry_number=retry_number, elapsed=elapsed, suggested=suggested, uniform=jitter
    )

    if delay is None:
        assert policy.deadline_seconds is not None
        return
    assert 0.0 <= delay <= policy.maximum_seconds
    if policy.deadline_seconds is not None:
        assert elapsed + delay <= policy.deadline_seconds + EPS


@given(policy=policies(), script=st.lists(steps, min_size=1, max_size=60))
def test_retried_calls_never_sleep_past_the_deadline(
    policy: RetryPolicy, script: list[Step]
) -> None:
    """For any policy and failure sequence: sleeps in [0, cap], total within the deadline."""
    clock = FakeClock()
    policy = policy.with_(clock=clock)
    started_at: list[float] = []
    t0 = clock.monotonic()

    def op() -> int:
        step = script[min(len(started_at), len(script) - 1)]
        started_at.append(clock.monotonic())
        clock.advance(step.takes)
        if step.outcome == "transient":
            raise gexc.ServiceUnavailable("down")
        if step.outcome == "hinted":
            hint = None if step.hint is None else timedelta(seconds=step.hint)
            raise CircuitOpenError("bq", "open", retry_after=hint)
        if step.outcome == "permanent":
            raise gexc.PermissionDenied("no")
        return len(started_at)

    try:
        outcome: object = policy.call(op)
    except (RetryExhaustedError, gexc.PermissionDenied) as exc:
        outcome = exc

    deadline = policy.deadline_seconds
    assert 1 <= len(started_at) <= policy.attempts
    assert len(clock.sleeps) == len(started_at) - 1
    assert all(0.0 <= s <= policy.maximum_seconds for s in clock.sleeps)
    if deadline is not None:
        assert sum(clock.sleeps) <= deadline + EPS
        assert all(start - t0 <= deadline + EPS for start in started_at)
    last = script[min(len(started_at), len(script)) - 1]
    if isinstance(outcome, RetryExhaustedError):
        assert last.outcome in {"transient", "hinted"}
        assert outcome.attempts == len(started_at)
    elif isinstance(outcome, gexc.PermissionDenied):
        assert last.outcome == "permanent"
    else:
        assert (last.outcome, outcome) == ("ok", len(started_at))
