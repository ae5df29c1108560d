"""FenceGuard at its boundary: adjacent tokens, as consecutive leases produce them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline_reliability.errors import StaleFenceError
from pipeline_reliability.lock import FenceGuard

KEY = ("phase4", "2026-01-31")


@given(n=st.integers(1, 2**63 - 2))
def test_item19_token_one_below_the_newest_is_refused(n: int) -> None:
    """After N wrote: N is admitted again, N-1 is refused, N+1 is admitted and becomes newest."""
    guard = FenceGuard()
    assert guard.check(n, key=KEY) == n

    assert guard.check(n, key=KEY) == n  # the same holder writes again
    with pytest.raises(StaleFenceError) as info:
        guard.check(n - 1, key=KEY)
    assert (info.value.token, info.value.current) == (n - 1, n)
    assert guard.newest(KEY) == n  # a refused token changes nothing

    assert guard.check(n + 1, key=KEY) == n + 1
    assert guard.newest(KEY) == n + 1
    with pytest.raises(StaleFenceError):
        guard.check(n, key=KEY)


def test_consecutive_lease_tokens_fence_each_other() -> None:
    """Tokens 1, 2, 3 as a fresh lock hands them out: each newer one shuts the older out."""
    guard = FenceGuard()
    for token in (1, 2, 3):
        guard.check(token, key=KEY)
        with pytest.raises(StaleFenceError):
            guard.check(token - 1, key=KEY)


def test_keys_are_fenced_separately() -> None:
    """A newer token on one key does not refuse an older one on another."""
    guard = FenceGuard()
    guard.check(2, key=KEY)

    assert guard.check(1, key=("phase4", "2026-02-01")) == 1
    assert guard.newest(("phase4", "2026-02-01")) == 1


def test_tokens_stop_at_int64() -> None:
    """2**63-1, the largest INT64, is a token; 2**63 is refused before any comparison."""
    from pipeline_reliability.errors import InvalidInputError

    guard = FenceGuard()
    assert guard.check(2**63 - 1, key=KEY) == 2**63 - 1
    for beyond in (2**63, 10**5000):
        with pytest.raises(InvalidInputError):
            guard.check(beyond, key=KEY)
    assert guard.newest(KEY) == 2**63 - 1
