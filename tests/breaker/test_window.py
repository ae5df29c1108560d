"""The constant-memory outcome window agrees with a naive list of every outcome."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline_reliability.breaker._window import OutcomeWindow


@given(
    threshold=st.integers(1, 5),
    minimum=st.integers(1, 10),
    window=st.sampled_from([1.0, 5.0, 10.0]),
    steps=st.lists(
        st.tuples(st.sampled_from([0.0, 0.5, 1.0, 3.0, 7.0]), st.booleans()), max_size=60
    ),
)
def test_window_matches_a_naive_model(
    threshold: int, minimum: int, window: float, steps: list[tuple[float, bool]]
) -> None:
    """tripped() is exactly: ≥ threshold failures and ≥ minimum calls younger than window."""
    w = OutcomeWindow(failure_threshold=threshold, minimum_calls=minimum, window=window)
    seen: list[tuple[float, bool]] = []
    now = 0.0
    for gap, failed in steps:
        now += gap
        (w.failure if failed else w.success)(now)
        seen.append((now, failed))
        live = [f for t, f in seen if now - t < window]

        expected = sum(live) >= threshold and len(live) >= max(minimum, threshold)
        assert w.tripped(now) == expected


def test_successes_are_not_stored_when_not_needed() -> None:
    """With minimum_calls ≤ failure_threshold the window keeps no success at all."""
    w = OutcomeWindow(failure_threshold=3, minimum_calls=3, window=10.0)

    for i in range(100):
        w.success(float(i))

    assert not w.records_successes
    assert not w.tripped(100.0)


def test_clear_forgets_everything() -> None:
    """After clear() the window starts over."""
    w = OutcomeWindow(failure_threshold=1, minimum_calls=1, window=10.0)
    w.failure(0.0)
    assert w.tripped(0.0)
    assert w.failure_count(0.0) == 1

    w.clear()

    assert not w.tripped(0.0)
