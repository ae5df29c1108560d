"""
Hostile input to every public entry point of ConcurrencyLimit and its async twin.

Only ``ReliabilityError`` subclasses may escape, and a refused call writes
nothing (``store.stats.writes`` on a fresh MemoryStore does not move).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostile_values import HOSTILE_SETTINGS, hostile
from pipeline_reliability import AsyncMemoryStore, MemoryStore
from pipeline_reliability.errors import ConfigurationError, InvalidInputError, ReliabilityError
from pipeline_reliability.limits import AsyncConcurrencyLimit, ConcurrencyLimit
from pipeline_reliability.testing import FakeClock

OPTIONS = (
    "name",
    "store",
    "limit",
    "lease",
    "owner",
    "clock",
    "max_wait",
    "on_store_error",
    "store_timeout",
    "max_waiters",
    "auto_renew",
    "collection",
)


def _valid(store: object, clock: FakeClock) -> dict[str, Any]:
    return {"name": "merge:t", "store": store, "limit": 2, "lease": 60, "owner": "a",
            "clock": clock}


def _only_typed_errors(store: MemoryStore, call: Callable[[], Any]) -> Any:
    before = store.stats.writes
    try:
        return call()
    except ReliabilityError:
        assert store.stats.writes == before, "a refused call wrote to the store"
        return None


@HOSTILE_SETTINGS
@given(option=st.sampled_from(OPTIONS), value=hostile)
def test_concurrency_limit_options_and_every_method(option: str, value: Any) -> None:
    """One hostile option: refused up front, or a limit whose every method is safe."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    options = {**_valid(store, clock), option: value}
    if option == "auto_renew":
        options["auto_renew"] = value if not isinstance(value, bool) else False

    limit = _only_typed_errors(store, lambda: ConcurrencyLimit(**options))
    if limit is None:
        assert store.stats.writes == 0
        return
    slot = _only_typed_errors(store, lambda: limit.acquire(timeout=0))
    if slot is not None:
        _only_typed_errors(store, slot.renew)
        _only_typed_errors(store, slot.ensure_held)
        _only_typed_errors(store, slot.release)
    _only_typed_errors(store, lambda: limit.add_listener(value))


@HOSTILE_SETTINGS
@given(timeout=hostile)
def test_slot_timeout_argument(timeout: Any) -> None:
    """slot(timeout) refuses hostile values before touching the store (the limit is free)."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    limit = ConcurrencyLimit("t", store, limit=1, clock=clock)

    def run() -> None:
        with limit.slot(timeout=timeout):
            pass

    _only_typed_errors(store, run)
    assert store.dump() == {}, "whatever happened, no slot is left behind"


@HOSTILE_SETTINGS
@given(option=st.sampled_from(OPTIONS), value=hostile)
def test_async_concurrency_limit_options(option: str, value: Any) -> None:
    clock = FakeClock()
    astore = AsyncMemoryStore(clock=clock)
    options = {**_valid(astore, clock), option: value}
    if option == "auto_renew":
        options["auto_renew"] = value if not isinstance(value, bool) else False

    async def main() -> None:
        limit = AsyncConcurrencyLimit(**options)
        async with limit.slot(timeout=0) as slot:
            await slot.ensure_held()

    with contextlib.suppress(ReliabilityError):
        asyncio.run(main())


@pytest.mark.parametrize(
    "options",
    [
        {"limit": 0},
        {"limit": 1001},
        {"limit": True},
        {"lease": 1e-7},  # rounds to no time at all
        {"lease": dt.timedelta.max},
        {"owner": "\ud800"},
        {"owner": "o" * 257},
        {"max_waiters": 1001},
        {"max_waiters": -1},
        {"on_store_error": "proceed"},
        {"store": None},
        {"clock": "now"},
        {"collection": "a/b"},
    ],
)
def test_bad_options_are_configuration_errors(options: dict[str, Any]) -> None:
    clock = FakeClock()
    with pytest.raises(ConfigurationError):
        ConcurrencyLimit(**{**_valid(MemoryStore(clock=clock), clock), **options})


@pytest.mark.parametrize("name", ["", " ", "\ud800", "n" * 2000, None, 5])
def test_bad_names_are_invalid_input(name: Any) -> None:
    clock = FakeClock()
    with pytest.raises(InvalidInputError):
        ConcurrencyLimit(**{**_valid(MemoryStore(clock=clock), clock), "name": name})
