"""
BigQueryWriter.replace_partition at unit level (issue 11, item 5): job ids,
retries on serialization conflicts, fencing errors, the empty-batch guard and
argument checks, on the fake client. What the SQL does to real rows is in
``test_writer_rebuild_emulator.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from writer_fakes import FakeBigQuery, job_error

from pipeline_reliability import InvalidInputError, StaleFenceError, WriteFailedError
from pipeline_reliability.retry import RetryPolicy, set_testing
from pipeline_reliability.sinks.writer import BigQueryWriter
from pipeline_reliability.testing import FakeClock

TABLE = "stats.player_game"
DAY = "2026-01-31"
KEY = ("game_date", "player")


class Lease:
    """Anything with a token fences a write."""

    def __init__(self, token: int) -> None:
        self.token = token


@pytest.fixture(autouse=True)
def _no_retry_sleeps() -> Iterator[None]:
    """Retries never sleep here."""
    with set_testing(True):
        yield


@pytest.fixture
def client() -> FakeBigQuery:
    """A fake client with a table partitioned by game_date; rebuild counts planned."""
    fake = FakeBigQuery()
    fake.counts = {"inserted": 2, "updated": 1, "deleted": 4}
    return fake


@pytest.fixture
def writer(client: FakeBigQuery) -> BigQueryWriter:
    """A writer on the fake client, with a fixed clock (one replay window)."""
    return BigQueryWriter(client, retry=RetryPolicy(attempts=4, deadline=None), clock=FakeClock())


def rows(*players: str, day: str = DAY) -> list[dict[str, Any]]:
    """One row per player on ``day``."""
    return [
        {"game_date": day, "player": p, "points": i,
         "processed_at": datetime(2026, 1, 31, i, tzinfo=UTC)}
        for i, p in enumerate(players)
    ]


def rebuild(writer: BigQueryWriter, batch: list[dict[str, Any]], **kwargs: Any) -> Any:
    """The production call: key (game_date, player), latest processed_at wins in the batch."""
    return writer.replace_partition(TABLE, DAY, batch, key=KEY, order_by="processed_at", **kwargs)


def rebuild_ids(client: FakeBigQuery) -> list[str]:
    """Ids of the rebuild MERGE jobs inserted so far, in order."""
    return [job_id for job_id in client.jobs if job_id.startswith("pr_rebuild_")]


def test_item5_a_rebuild_dedups_loads_runs_one_rebuild_merge_and_reports_deletions(
    writer: BigQueryWriter, client: FakeBigQuery
) -> None:
    """One call: dedup, one load, one `pr_rebuild_` script scoped to the date, staging dropped."""
    report = rebuild(writer, rows("a", "b", "a"))

    assert report.deduplicated == 1
    assert (report.inserted, report.updated, report.deleted) == (2, 1, 4)
    assert report.partition == DAY
    assert client.loads[0].count(b"\n") == 2
    (job_id,) = rebuild_ids(client)
    assert client.merges_run == [job_id] == [report.job_ids[-1]]
    script = client.jobs[job_id].query or ""
    assert "WHEN NOT MATCHED BY SOURCE AND T.`game_date` = DATE '2026-01-31' THEN DELETE" in script
    assert len(client.dropped) == 1


def test_item5_a_repeated_rebuild_is_recognised_and_differs_from_an_upsert(
    writer: BigQueryWriter, client: FakeBigQuery
) -> None:
    """Deterministic job ids: the same rebuild again runs nothing; an upsert is another write."""
    first = rebuild(writer, rows("a", "b"))
    calls = len(client.calls)

    again = rebuild(writer, rows("a", "b"))
    upserted = writer.upsert(TABLE, rows("a", "b"), key=KEY, order_by="processed_at",
                             partition_date=DAY)

    assert again.already_applied is True
    assert again.job_ids == (first.job_ids[-1],)
    assert (again.inserted, again.updated, again.deleted) == (2, 1, 4)
    assert "load" not in client.calls[calls : calls + 4]
    assert upserted.job_ids[-1].startswith("pr_merge_")
    assert rebuild_ids(client) == [first.job_ids[-1]]


def test_item5_a_serialization_conflict_is_retried_like_an_upsert(
    writer: BigQueryWriter, client: FakeBigQuery
) -> None:
    """"Could not serialize access ..." fails run _0; the rebuild runs again as _1."""
    digest = rebuild(writer, rows("c")).job_ids[-1].removeprefix("pr_rebuild_").rsplit("_", 1)[0]
    client.jobs.clear()
    client.merges_run.clear()
    client.fail_job[f"pr_rebuild_{digest}_0"] = job_error(
        "Could not serialize access to table demo-test:stats.player_game due to concurrent update"
    )

    report = rebuild(writer, rows("c"))

    assert rebuild_ids(client) == [f"pr_rebuild_{digest}_0", f"pr_rebuild_{digest}_1"]
    assert client.merges_run == [f"pr_rebuild_{digest}_1"] == [report.job_ids[-1]]


def test_item5_a_stale_fence_raises_and_a_refused_script_is_write_failed(
    writer: BigQueryWriter, client: FakeBigQuery
) -> None:
    """The fence check failing is StaleFenceError (tried once); other refusals WriteFailedError."""
    job_id = rebuild(writer, rows("d"), fence=Lease(3)).job_ids[-1]
    client.jobs.clear()
    client.fail_job[job_id] = job_error("Query error: pipeline_reliability.stale_fence current=8")

    with pytest.raises(StaleFenceError) as caught:
        rebuild(writer, rows("d"), fence=Lease(3))

    assert (caught.value.token, caught.value.current) == (3, 8)
    assert rebuild_ids(client) == [job_id]
    client.jobs.clear()
    client.fail_job[job_id] = job_error("Syntax error: Unexpected keyword")
    with pytest.raises(WriteFailedError) as failed:
        rebuild(writer, rows("d"), fence=Lease(3))
    assert failed.value.job_id == job_id


def test_item5_an_empty_rebuild_is_refused_unless_allowed(
    writer: BigQueryWriter, client: FakeBigQuery
) -> None:
    """No rows (or only null keys, dropped) would empty the day: refused before any call."""
    with pytest.raises(InvalidInputError, match="allow_empty"):
        rebuild(writer, [])
    with pytest.raises(InvalidInputError, match="allow_empty"):
        rebuild(writer, [{"game_date": DAY, "player": None}], null_keys="drop")
    assert client.calls == []

    report = rebuild(writer, [], allow_empty=True)

    assert "load" not in client.calls
    assert client.merges_run == [report.job_ids[-1]]
    assert report.deleted == 4


@pytest.mark.parametrize(
    ("args", "batch"),
    [
        ({"partition_date": None}, rows("a")),
        ({"partition_date": "2026-02-30"}, rows("a")),
        ({"partition_date": DAY, "allow_empty": "yes"}, rows("a")),
        ({"partition_date": DAY, "null_keys": "report"}, rows("a")),
        ({"partition_date": DAY, "keep": "newest"}, rows("a")),
        ({"partition_date": DAY, "fence": Lease(-1)}, rows("a")),
        ({"partition_date": DAY}, "not rows"),
        ({"partition_date": DAY}, [{"game_date": DAY, "player": None}]),
    ],
    ids=["no-date", "bad-date", "allow-empty-str", "null-keys", "keep", "fence", "rows",
         "null-key"],
)
def test_item5_bad_arguments_are_refused_before_any_client_call(
    client: FakeBigQuery, writer: BigQueryWriter, args: dict[str, Any], batch: Any
) -> None:
    """Every argument is checked first: InvalidInputError, and the client is never used."""
    day = args.pop("partition_date")
    with pytest.raises(InvalidInputError):
        writer.replace_partition(TABLE, day, batch, key=KEY, **args)
    assert client.calls == []


def test_item5_rows_of_another_date_or_no_partition_column_write_nothing(
    writer: BigQueryWriter, client: FakeBigQuery
) -> None:
    """A row outside the date, or a table without a partition column: refused, no job."""
    with pytest.raises(InvalidInputError, match="outside partition"):
        rebuild(writer, rows("a") + rows("b", day="2026-02-01"))
    unpartitioned = FakeBigQuery(partition_field=None)
    with pytest.raises(InvalidInputError, match="partition column"):
        rebuild(BigQueryWriter(unpartitioned), rows("a"))

    assert client.jobs == {} == unpartitioned.jobs
    assert "load" not in client.calls + unpartitioned.calls
