"""Helpers shared by the breaker tests (a unique module name: conftest.py is not importable)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipeline_reliability.breaker import BreakerState, CircuitBreaker

MakeBreaker = Callable[..., CircuitBreaker]
NAME = "billing-api"


class BoomError(Exception):
    """What the protected downstream raises when it fails."""


def fail() -> None:
    """A downstream call that fails."""
    raise BoomError("downstream failed")


def missing_key() -> None:
    """A call that raises KeyError (excluded in some tests)."""
    raise KeyError("missing")


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """The breaker's state (a call, so that type checkers do not narrow it between reads)."""
    return breaker.state


def ok() -> str:
    """A downstream call that succeeds."""
    return "ok"


def trip(breaker: CircuitBreaker, times: int = 3) -> None:
    """Make ``times`` failing calls through ``breaker``."""
    for _ in range(times):
        with pytest.raises(BoomError):
            breaker.call(fail)
