"""
Differential test (issue 12, item 5): the same random sequence of deliveries,
sweeps, confirmations, releases and rearms, applied to a ``CompletionTracker``
on a ``MemoryStore`` and to an ``AsyncCompletionTracker`` on an
``AsyncMemoryStore``, gives equal results (or equal errors) at every step and
equal documents at the end. Both run the same decision functions; this shows
the I/O around them (duplicate pre-read, gates, write ids, retries) adds or
loses nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline_reliability import AsyncMemoryStore, MemoryStore
from pipeline_reliability.completion import (
    AsyncCompletionTracker,
    CompletionTracker,
    MemoryExecutionLog,
    PhaseSpec,
    TriggerClaim,
)
from pipeline_reliability.errors import ReliabilityError
from pipeline_reliability.testing import FakeClock

PHASE = "phase3"
DATES = ("2026-01-30", "2026-01-31")
NAMES = ("a", "b", "c", "stranger")

record = st.tuples(
    st.just("record"),
    st.sampled_from(DATES),
    st.sampled_from(NAMES[:3] * 3 + NAMES[3:]),
    st.sampled_from(("r1", "r2")),
    st.sampled_from((None, "m1", "m2")),
    st.sampled_from(("success", "success", "success", "failed", "partial")),
    st.booleans(),  # trigger (False: a backfill)
    st.booleans(),  # through record_and_trigger
)
step = st.one_of(
    *[record] * 8,
    st.tuples(st.just("advance"), st.sampled_from((1, 30, 90, 400))),  # minutes
    st.tuples(st.just("sweep")),
    st.tuples(st.just("confirm")),
    st.tuples(st.just("release")),
    st.tuples(st.just("rearm"), st.sampled_from(DATES)),
    st.tuples(st.just("set_expected"), st.sampled_from(DATES)),
    st.tuples(st.just("status"), st.sampled_from(DATES)),
)


def _spec() -> PhaseSpec:
    return PhaseSpec(
        PHASE, {"a", "b", "c"}, min_to_trigger=2, deadline=timedelta(hours=2),
        trigger_lease=timedelta(minutes=20),
    )  # fmt: skip


class Twin:
    """One tracker and its clock; ``call`` runs an operation, sync or awaited."""

    def __init__(self, asynchronous: bool) -> None:
        self.clock = FakeClock()
        self.log = MemoryExecutionLog()
        self.sync_store = MemoryStore(clock=self.clock)
        options: dict[str, Any] = {
            "clock": self.clock, "owner": "w", "execution_log": self.log,
        }  # fmt: skip
        self.tracker: Any = (
            AsyncCompletionTracker(AsyncMemoryStore(store=self.sync_store), [_spec()], **options)
            if asynchronous
            else CompletionTracker(self.sync_store, [_spec()], **options)
        )
        self.asynchronous = asynchronous
        self.claims: list[TriggerClaim] = []

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            result = getattr(self.tracker, name)(*args, **kwargs)
            if self.asynchronous:
                result = asyncio.run(result)
        except ReliabilityError as exc:
            return ("error", type(exc).__name__, str(exc))
        claim = getattr(result, "trigger", None) or (
            result if isinstance(result, TriggerClaim) else None
        )
        if claim is not None:
            self.claims.append(claim)
        for claim in getattr(result, "claims", ()):
            self.claims.append(claim)
        return result

    def apply(self, action: tuple[Any, ...]) -> Any:
        kind, *args = action
        operations: dict[str, Callable[..., Any]] = {
            "record": self._record,
            "advance": lambda minutes: self.clock.advance(timedelta(minutes=minutes)),
            "sweep": lambda: self.call("sweep", PHASE, DATES),
            "confirm": lambda: self._settle("confirm_trigger"),
            "release": lambda: self._settle("release_trigger", "publish failed"),
            "rearm": lambda day: self.call("rearm_trigger", PHASE, day, "operator asked"),
            "set_expected": lambda day: self.call(
                "set_expected", PHASE, day, {"a", "b"}, reason="late game"
            ),
            "status": lambda day: self.call("status", PHASE, day),
        }
        return operations[kind](*args)

    def _record(self, *fields: Any) -> Any:
        day, name, run, message, status, trigger, publish = fields
        kw: dict[str, Any] = {
            "execution_id": run, "message_id": message, "status": status, "trigger": trigger,
        }  # fmt: skip
        if publish:
            return self.call("record_and_trigger", PHASE, day, name, publish=_publish, **kw)
        return self.call("record_completion", PHASE, day, name, **kw)

    def _settle(self, method: str, *args: Any) -> Any:
        """Confirm or release the latest claim not yet settled (if any)."""
        if not self.claims:
            return None
        return self.call(method, self.claims.pop(), *args)

    def documents(self) -> dict[str, Any]:
        """Every document, without the random write ids (``ops``) of each operation."""
        docs = self.sync_store.dump()
        for collection in docs.values():
            for doc in collection.values():
                doc.pop("ops", None)
        return docs


def _publish(event: object) -> None:
    """A publish that always succeeds (a plain callable for both trackers)."""


@settings(max_examples=100, deadline=None)
@given(st.lists(step, min_size=1, max_size=30))
def test_item5_sync_and_async_trackers_decide_identically(actions: list[tuple[Any, ...]]) -> None:
    sync, asyn = Twin(asynchronous=False), Twin(asynchronous=True)
    for action in actions:
        assert sync.apply(action) == asyn.apply(action), action
    assert sync.documents() == asyn.documents()
    assert sync.log.rows == asyn.log.rows


def test_item5_many_concurrent_tasks_trigger_exactly_once() -> None:
    """Must show: many concurrent record_completion tasks trigger exactly once."""
    clock = FakeClock()
    tracker = AsyncCompletionTracker(
        AsyncMemoryStore(clock=clock), [_spec()], clock=clock, owner="w"
    )

    async def storm() -> list[Any]:
        calls = [
            tracker.record_completion(PHASE, DATES[0], name, execution_id=f"r{i % 3}")
            for i in range(30)
            for name in ("a", "b", "c")
        ]
        return await asyncio.gather(*calls)

    results = asyncio.run(storm())
    assert len([r for r in results if r.trigger is not None]) == 1
    assert sum(r.counted for r in results) == 3
