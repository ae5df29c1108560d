"""
BigQueryWriter on the BigQuery emulator: concurrent writers, fencing, retries
after a lost response, duplicate detection, and the MERGE applying exactly the
winner rule of deduplicate_rows.

The emulator neither rejects duplicate job ids nor loses responses
(EMULATORS.md §5.3); the 409 protocol is proven in ``test_writer.py``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline_reliability import StaleFenceError
from pipeline_reliability.dedup import deduplicate_rows
from pipeline_reliability.retry import RetryPolicy, set_testing
from pipeline_reliability.sinks.bootstrap import create_table_from_schema
from pipeline_reliability.sinks.writer import BigQueryWriter

pytestmark = pytest.mark.bigquery

DAY = "2026-01-31"
KEY = ("game_date", "player")
T0 = datetime(2026, 1, 31, 20, tzinfo=UTC)
_EXAMPLES = itertools.count()  # one fresh table per hypothesis example


class Lease:
    """A stand-in for a DateLock lease: only the token matters to the writer."""

    def __init__(self, token: int) -> None:
        self.token = token


@pytest.fixture(autouse=True)
def _no_retry_sleeps() -> Iterator[None]:
    """Retries never sleep here."""
    with set_testing(True):
        yield


def make_table(client: Any, dataset: str, name: str = "player_game") -> str:
    """A game_date-partitioned target table (as production's analytics tables are)."""
    from google.cloud import bigquery

    table = bigquery.Table(
        f"{client.project}.{dataset}.{name}",
        schema=[
            bigquery.SchemaField("game_date", "DATE", "REQUIRED"),
            bigquery.SchemaField("player", "STRING", "REQUIRED"),
            bigquery.SchemaField("points", "INT64"),
            bigquery.SchemaField("source", "STRING"),
            bigquery.SchemaField("version", "INT64"),
            bigquery.SchemaField("processed_at", "TIMESTAMP"),
        ],
    )
    table.time_partitioning = bigquery.TimePartitioning(field="game_date")
    client.create_table(table)
    return f"{dataset}.{name}"


def contents(client: Any, table: str) -> list[dict[str, Any]]:
    """Every row of ``table``, sorted by key."""
    rows = [dict(row.items()) for row in client.list_rows(table)]
    return sorted(rows, key=lambda r: (str(r["game_date"]), r["player"]))


def batch(players: range, source: str, hour: int, day: str = DAY) -> list[dict[str, Any]]:
    """One writer's batch: every player with this source's values, processed at ``hour``."""
    return [
        {
            "game_date": day,
            "player": f"player-{i:03d}",
            "points": i,
            "source": source,
            "processed_at": T0 + timedelta(hours=hour),
        }
        for i in players
    ]


@pytest.fixture
def table(bigquery_client: Any, bigquery_dataset: str) -> str:
    """The target table, plus the fence table the bootstrap would create."""
    create_table_from_schema(
        bigquery_client, f"{bigquery_dataset}.write_fences", "write_fences"
    )
    return make_table(bigquery_client, bigquery_dataset)


@pytest.fixture
def writer(bigquery_client: Any) -> BigQueryWriter:
    """A writer with a quick retry policy."""
    return BigQueryWriter(bigquery_client, retry=RetryPolicy(attempts=5, deadline=60))


def upsert(writer: BigQueryWriter, table: str, rows: list[dict[str, Any]], **kw: Any) -> Any:
    """The production call: keep the latest processed_at per (game_date, player)."""
    kw.setdefault("partition_date", DAY)
    return writer.upsert(table, rows, key=KEY, order_by="processed_at", **kw)


def test_f8_two_concurrent_writers_leave_one_row_per_key_with_the_latest_values(
    bigquery_client: Any, table: str, writer: BigQueryWriter
) -> None:
    """F8: overlapping batches for one date, written at once, end with one latest row per key."""
    older = batch(range(0, 60), "instance-a", hour=1)
    newer = batch(range(30, 90), "instance-b", hour=2)
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def write(rows: list[dict[str, Any]]) -> None:
        barrier.wait()
        try:
            upsert(writer, table, rows)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(rows,)) for rows in (older, newer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    rows = contents(bigquery_client, table)
    assert len(rows) == 90
    assert writer.find_duplicates(table, KEY) == []
    by_player = {r["player"]: r["source"] for r in rows}
    assert {by_player[f"player-{i:03d}"] for i in range(30, 90)} == {"instance-b"}
    assert {by_player[f"player-{i:03d}"] for i in range(0, 30)} == {"instance-a"}


def test_an_older_batch_committed_later_does_not_overwrite_newer_rows(
    bigquery_client: Any, table: str, writer: BigQueryWriter
) -> None:
    """Commit order does not matter: a late, older batch only fills in keys it alone has."""
    upsert(writer, table, batch(range(0, 10), "new", hour=5))

    report = upsert(writer, table, batch(range(5, 15), "old", hour=1))

    assert (report.inserted, report.updated, report.superseded) == (5, 0, 5)
    sources = {r["player"]: r["source"] for r in contents(bigquery_client, table)}
    assert [sources[f"player-{i:03d}"] for i in range(15)] == ["new"] * 10 + ["old"] * 5


def test_a_stale_fence_is_rejected_and_changes_nothing(
    bigquery_client: Any, table: str, writer: BigQueryWriter, bigquery_dataset: str
) -> None:
    """A write with an older token than one that already wrote raises and writes nothing."""
    upsert(writer, table, batch(range(3), "holder-5", hour=1), fence=Lease(5))
    before = contents(bigquery_client, table)

    with pytest.raises(StaleFenceError) as caught:
        upsert(writer, table, batch(range(6), "holder-4", hour=9), fence=Lease(4))

    assert (caught.value.token, caught.value.current) == (4, 5)
    assert contents(bigquery_client, table) == before
    fences = list(bigquery_client.list_rows(f"{bigquery_dataset}.write_fences"))
    assert [(f["partition"], f["token"]) for f in fences] == [(DAY, 5)]


def test_the_current_holder_writes_again_and_other_partitions_are_separate(
    bigquery_client: Any, table: str, writer: BigQueryWriter
) -> None:
    """The same token may write many times; a fence covers one (table, partition) only."""
    upsert(writer, table, batch(range(2), "a", hour=1), fence=Lease(5))
    upsert(writer, table, batch(range(2), "a", hour=2), fence=Lease(5))
    upsert(writer, table, batch(range(2), "b", 1, "2026-02-01"), fence=Lease(1),
           partition_date="2026-02-01")
    upsert(writer, table, batch(range(2), "c", hour=3), fence=Lease(6))

    with pytest.raises(StaleFenceError):
        upsert(writer, table, batch(range(2), "d", hour=4), fence=Lease(5))
    assert len(contents(bigquery_client, table)) == 4


def test_f9_a_save_retried_after_a_lost_response_does_not_duplicate_rows(
    bigquery_client: Any, table: str
) -> None:
    """F9: the MERGE ran, its response was lost; the retries leave exactly one row per key."""
    from google.api_core import exceptions as gexc

    class LosesFirstMergeResponse:
        """Runs the first MERGE script to completion, then 'loses' its response."""

        def __init__(self, inner: Any) -> None:
            self.inner, self.lost = inner, False

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def query(self, sql: str, **kwargs: Any) -> Any:
            job = self.inner.query(sql, **kwargs)
            if "MERGE" in sql and not self.lost:
                self.lost = True
                job.result(job_retry=None)
                raise gexc.ServiceUnavailable(  # type: ignore[no-untyped-call]
                    "response lost after the job ran"
                )
            return job

    flaky = LosesFirstMergeResponse(bigquery_client)
    writer = BigQueryWriter(flaky, retry=RetryPolicy(attempts=5, deadline=60))
    rows = batch(range(20), "only", hour=1)

    first = upsert(writer, table, rows)
    again = upsert(writer, table, rows)  # the caller's own retry of a save that succeeded

    assert flaky.lost
    assert again.already_applied is True
    assert again.job_ids[-1] == first.job_ids[-1]
    assert len(contents(bigquery_client, table)) == 20
    assert writer.find_duplicates(table, KEY) == []


def test_find_duplicates_finds_planted_duplicates(
    bigquery_client: Any, table: str, writer: BigQueryWriter
) -> None:
    """Rows planted twice (as the old DELETE+INSERT fallback left them) are found and counted."""
    upsert(writer, table, batch(range(5), "clean", hour=1))
    bigquery_client.query(
        f"INSERT INTO `{bigquery_client.project}.{table}` (game_date, player, points) VALUES "
        "(DATE '2026-01-31', 'player-001', 1), (DATE '2026-01-31', 'player-001', 1), "
        "(DATE '2026-01-31', 'player-003', 3), (DATE '2026-01-30', 'player-009', 9), "
        "(DATE '2026-01-30', 'player-009', 9)"
    ).result()

    everywhere = writer.find_duplicates(table, KEY)
    that_day = writer.find_duplicates(table, KEY, DAY)

    day = datetime(2026, 1, 31, tzinfo=UTC).date()
    assert everywhere[0] == ((day, "player-001"), 3)
    assert sorted(count for _, count in everywhere) == [2, 2, 3]
    assert that_day == [((day, "player-001"), 3), ((day, "player-003"), 2)]


rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "player": st.sampled_from(["a", "b", "c"]),
            "version": st.one_of(st.none(), st.integers(0, 3)),
            "points": st.integers(0, 99),
        }
    ),
    max_size=8,
)


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(existing=rows_strategy, incoming=rows_strategy, keep=st.sampled_from(["first", "last"]))
def test_the_merge_picks_the_same_winners_as_deduplicate_rows(  # noqa: PLR0917
    bigquery_client: Any,
    bigquery_dataset: str,
    writer: BigQueryWriter,
    existing: list[dict[str, Any]],
    incoming: list[dict[str, Any]],
    keep: str,
) -> None:
    """One policy: the table after an upsert == deduplicate_rows(table before + batch)."""
    for row in existing + incoming:
        row["game_date"] = DAY
    name = make_table(bigquery_client, bigquery_dataset, f"example_{next(_EXAMPLES)}")
    fields = ("game_date", "player", "points", "version")

    def upsert_version(rows: list[dict[str, Any]]) -> None:
        writer.upsert(name, rows, key=KEY, order_by="version", keep=keep, partition_date=DAY)

    upsert_version(existing)
    before = [{f: r[f] for f in fields} for r in contents(bigquery_client, name)]
    for row in before:
        row["game_date"] = DAY
    upsert_version(incoming)

    expected = deduplicate_rows(before + incoming, KEY, "version", keep).rows
    after = [{f: r[f] for f in fields} for r in contents(bigquery_client, name)]
    for row in after:
        row["game_date"] = DAY
    assert sorted(after, key=lambda r: r["player"]) == sorted(
        ({f: r[f] for f in fields} for r in expected), key=lambda r: r["player"]
    )
