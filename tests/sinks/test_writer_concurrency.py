"""BigQueryWriter(concurrency=...): a ConcurrencyLimit slot is held around each MERGE attempt."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from writer_fakes import FakeBigQuery, FakeJob, job_error

from pipeline_reliability import MemoryStore
from pipeline_reliability.errors import (
    ConfigurationError,
    RetryExhaustedError,
    SlotNotAcquiredError,
)
from pipeline_reliability.limits import ConcurrencyLimit
from pipeline_reliability.retry import RetryPolicy, set_testing
from pipeline_reliability.sinks.writer import BigQueryWriter
from pipeline_reliability.testing import FakeClock

TABLE = "stats.player_game"
DAY = "2026-01-31"
KEY = ("game_date", "player")


@pytest.fixture(autouse=True)
def _no_sleeps() -> Iterator[None]:
    set_testing(True)
    yield
    set_testing(False)


class Watching(FakeBigQuery):
    """Records how many slots of the limit were held when each statement was sent."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__()
        self.store = store
        self.held_at_query: list[int] = []

    def query(self, sql: str, job_id: str | None = None, **kwargs: Any) -> FakeJob:
        doc = self.store.dump().get("concurrency_limits", {}).get("merge:stats.player_game", {})
        self.held_at_query.append(len(doc.get("holders", {})))
        return super().query(sql, job_id=job_id, **kwargs)


def _rows() -> list[dict[str, Any]]:
    return [{"game_date": DAY, "player": "p", "points": 1,
             "processed_at": datetime(2026, 1, 31, tzinfo=UTC)}]


def test_each_merge_attempt_holds_one_slot_released_after_it() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    limit = ConcurrencyLimit("merge:stats.player_game", store, limit=18, clock=clock)
    client = Watching(store)
    writer = BigQueryWriter(client, retry=RetryPolicy(attempts=4, deadline=None), clock=clock,
                            concurrency=limit)
    store.reset_stats()

    writer.upsert(TABLE, _rows(), key=KEY, partition_date=DAY)

    assert client.held_at_query == [1], "the MERGE ran inside a slot"
    assert store.dump() == {}, "and gave it back"
    assert store.stats.transactions == 2


def test_a_retried_merge_does_not_hold_its_slot_between_attempts() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    limit = ConcurrencyLimit("merge:stats.player_game", store, limit=1, clock=clock)
    client = Watching(store)
    writer = BigQueryWriter(client, retry=RetryPolicy(attempts=4, deadline=None), clock=clock,
                            concurrency=limit)
    digest_writer = BigQueryWriter(FakeBigQuery(), clock=clock)
    report = digest_writer.upsert(TABLE, _rows(), key=KEY, partition_date=DAY)
    first = report.job_ids[-1]
    client.fail_job[first] = job_error(
        "Could not serialize access to table demo-test:stats.player_game due to concurrent update"
    )

    writer.upsert(TABLE, _rows(), key=KEY, partition_date=DAY)

    assert client.held_at_query == [1, 1]
    assert store.stats.transactions == 4, "one slot per attempt: acquire + release twice"


def test_a_full_limit_raises_the_typed_timeout_and_sends_no_statement() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    limit = ConcurrencyLimit("merge:stats.player_game", store, limit=1, clock=clock, max_wait=0)
    other = ConcurrencyLimit("merge:stats.player_game", store, limit=1, clock=clock)
    other.acquire()
    client = Watching(store)
    writer = BigQueryWriter(client, retry=RetryPolicy(attempts=1, deadline=None), clock=clock,
                            concurrency=limit)

    with pytest.raises(RetryExhaustedError) as info:
        writer.upsert(TABLE, _rows(), key=KEY, partition_date=DAY)
    assert isinstance(info.value.last_error, SlotNotAcquiredError), "transient: retried first"
    assert client.held_at_query == []


def test_concurrency_must_be_a_concurrency_limit() -> None:
    with pytest.raises(ConfigurationError):
        BigQueryWriter(FakeBigQuery(), concurrency="18")  # type: ignore[arg-type]
