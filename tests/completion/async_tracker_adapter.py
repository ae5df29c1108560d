"""
Run the sync tracker's scenario tests on ``AsyncCompletionTracker``.

``AsyncOverSync`` is a test-only ``AsyncStateStore`` over any sync store (a
``FaultyStore`` included, so the sync tests' fault injection reaches the async
tracker unchanged: it is the failing async store of these tests).
``BlockingTracker`` drives an ``AsyncCompletionTracker`` from sync test code:
each method call runs its coroutine to completion on a fresh event loop, so a
scenario test written for ``CompletionTracker`` runs, unchanged, on the async one.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from tracker_helpers import MakeTracker

from pipeline_reliability.completion import AsyncCompletionTracker, CompletionTracker
from pipeline_reliability.stores import StateStore
from store_backends import AsyncOverSync

R = TypeVar("R")


def run(coro: Coroutine[Any, Any, R]) -> R:
    """Run ``coro`` to completion, also from inside a running loop (a publish hook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:  # a nested call: its own loop, in its own thread
        return pool.submit(asyncio.run, coro).result(timeout=60)


class BlockingTracker:
    """The sync face of an ``AsyncCompletionTracker`` (its coroutine methods run to completion)."""

    def __init__(self, inner: AsyncCompletionTracker) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.inner, name)
        if not inspect.iscoroutinefunction(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            return run(value(*args, **kwargs))

        return call


def blocking_factory(
    store: StateStore, make_options: Callable[..., dict[str, Any]]
) -> MakeTracker:
    """A ``make_tracker`` whose trackers are async ones behind :class:`BlockingTracker`."""

    def make(owner: str = "worker-1", **options: Any) -> CompletionTracker:
        given = options.pop("store", store)
        is_async = inspect.iscoroutinefunction(given.transact)
        async_store = given if is_async else AsyncOverSync(given)
        tracker = AsyncCompletionTracker(async_store, owner=owner, **make_options(**options))
        return cast("CompletionTracker", BlockingTracker(tracker))

    return make
