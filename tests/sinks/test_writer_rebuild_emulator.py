"""
BigQueryWriter.replace_partition on the BigQuery emulator (issue 11, item 5):
the one MERGE with ``WHEN NOT MATCHED BY SOURCE AND <partition filter> THEN
DELETE`` really removes the stale rows of its date and nothing else, a stale
fence changes nothing, and two concurrent rebuilds of one date leave exactly
one writer's rows.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline_reliability import InvalidInputError, StaleFenceError
from pipeline_reliability.retry import RetryPolicy, set_testing
from pipeline_reliability.sinks.bootstrap import create_table_from_schema
from pipeline_reliability.sinks.writer import BigQueryWriter

pytestmark = pytest.mark.bigquery

DAY = "2026-01-31"
OTHER = "2026-01-30"
KEY = ("game_date", "player")
T0 = datetime(2026, 1, 31, 20, tzinfo=UTC)


class Lease:
    """A stand-in for a DateLock lease: only the token matters to the writer."""

    def __init__(self, token: int) -> None:
        self.token = token


@pytest.fixture(autouse=True)
def _no_retry_sleeps() -> Iterator[None]:
    """Retries never sleep here."""
    with set_testing(True):
        yield


@pytest.fixture
def table(bigquery_client: Any, bigquery_dataset: str) -> str:
    """A game_date-partitioned target table, plus the fence table."""
    from google.cloud import bigquery

    create_table_from_schema(bigquery_client, f"{bigquery_dataset}.write_fences", "write_fences")
    target = bigquery.Table(
        f"{bigquery_client.project}.{bigquery_dataset}.player_game",
        schema=[
            bigquery.SchemaField("game_date", "DATE", "REQUIRED"),
            bigquery.SchemaField("player", "STRING"),
            bigquery.SchemaField("points", "INT64"),
            bigquery.SchemaField("source", "STRING"),
            bigquery.SchemaField("processed_at", "TIMESTAMP"),
        ],
    )
    target.time_partitioning = bigquery.TimePartitioning(field="game_date")
    bigquery_client.create_table(target)
    return f"{bigquery_dataset}.player_game"


@pytest.fixture
def writer(bigquery_client: Any) -> BigQueryWriter:
    """A writer with a quick retry policy."""
    return BigQueryWriter(bigquery_client, retry=RetryPolicy(attempts=8, deadline=120))


def batch(players: range, source: str, day: str = DAY, hour: int = 1) -> list[dict[str, Any]]:
    """One writer's rows: every player with this source's values."""
    return [
        {"game_date": day, "player": f"player-{i:03d}", "points": i, "source": source,
         "processed_at": T0 + timedelta(hours=hour)}
        for i in players
    ]


def contents(client: Any, table: str, day: str | None = None) -> list[tuple[str, str, str]]:
    """(date, player, source) of every row (of ``day``), sorted."""
    rows = [(str(r["game_date"]), r["player"], r["source"]) for r in client.list_rows(table)]
    return sorted(r for r in rows if day is None or r[0] == day)


def rebuild(writer: BigQueryWriter, table: str, rows: list[dict[str, Any]], **kw: Any) -> Any:
    """The production call: rebuild DAY, key (game_date, player)."""
    return writer.replace_partition(table, DAY, rows, key=KEY, order_by="processed_at", **kw)


def test_item5_replace_partition_removes_stale_rows_of_its_date_only(
    bigquery_client: Any, table: str, writer: BigQueryWriter
) -> None:
    """Stale keys of DAY go, kept keys get the new values, new keys arrive; OTHER is untouched."""
    writer.upsert(table, batch(range(10), "old"), key=KEY, partition_date=DAY)
    writer.upsert(table, batch(range(10), "other-day", OTHER), key=KEY, partition_date=OTHER)
    before_other = contents(bigquery_client, table, OTHER)

    report = rebuild(writer, table, batch(range(5, 15), "rebuilt", hour=0))

    assert (report.inserted, report.updated, report.deleted) == (5, 5, 5)
    assert contents(bigquery_client, table, DAY) == [
        (DAY, f"player-{i:03d}", "rebuilt") for i in range(5, 15)
    ]
    assert contents(bigquery_client, table, OTHER) == before_other
    assert writer.find_duplicates(table, KEY) == []


def test_item5_a_rebuild_leaves_exactly_the_new_set_even_over_duplicates(
    bigquery_client: Any, table: str, writer: BigQueryWriter
) -> None:
    """Keys held twice (F8's leftovers) and null keys end up as the new set, once each."""
    bigquery_client.query(
        f"INSERT INTO `{bigquery_client.project}.{table}` (game_date, player, source) VALUES "
        f"(DATE '{DAY}', 'player-001', 'dup'), (DATE '{DAY}', 'player-001', 'dup'), "
        f"(DATE '{DAY}', NULL, 'null-key'), (DATE '{OTHER}', 'player-001', 'dup'), "
        f"(DATE '{OTHER}', 'player-001', 'dup')"
    ).result()

    report = rebuild(writer, table, batch(range(3), "clean"))

    # Gone: the extra copy of player-001 and the null-key row (3 old = 1 replaced + 2 gone).
    assert (report.inserted, report.updated, report.deleted) == (2, 1, 2)
    assert contents(bigquery_client, table, DAY) == [
        (DAY, f"player-{i:03d}", "clean") for i in range(3)
    ]
    assert contents(bigquery_client, table, OTHER) == [(OTHER, "player-001", "dup")] * 2
    again = rebuild(writer, table, [], allow_empty=True)
    assert again.deleted == 3
    assert contents(bigquery_client, table, DAY) == []
    assert len(contents(bigquery_client, table, OTHER)) == 2


def test_item5_replace_partition_rejects_a_stale_fence_and_changes_nothing(
    bigquery_client: Any, table: str, writer: BigQueryWriter, bigquery_dataset: str
) -> None:
    """A rebuild with token 4 after token 5 wrote: StaleFenceError; rows and fence unchanged."""
    rebuild(writer, table, batch(range(3), "holder-5"), fence=Lease(5))
    before = contents(bigquery_client, table)

    with pytest.raises(StaleFenceError) as caught:
        rebuild(writer, table, batch(range(6, 9), "holder-4"), fence=Lease(4))

    assert (caught.value.token, caught.value.current) == (4, 5)
    assert contents(bigquery_client, table) == before
    fences = list(bigquery_client.list_rows(f"{bigquery_dataset}.write_fences"))
    assert [(f["partition"], f["token"]) for f in fences] == [(DAY, 5)]
    # The boundary: the same token rebuilds again; an upsert with 4 is stale too.
    rebuild(writer, table, batch(range(2), "holder-5-again"), fence=Lease(5))
    with pytest.raises(StaleFenceError):
        writer.upsert(table, batch(range(1), "x"), key=KEY, partition_date=DAY, fence=Lease(4))
    assert {r[2] for r in contents(bigquery_client, table)} == {"holder-5-again"}


def race(
    writer: BigQueryWriter,
    table: str,
    sets: dict[str, list[dict[str, Any]]],
    fenced: bool,
    round_: int,
) -> list[BaseException]:
    """Rebuild DAY with set "a" (token 5) and "b" (token 6) at once; return their errors."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def write(name: str, token: int) -> None:
        fence = Lease(10 * round_ + token) if fenced else None
        barrier.wait()
        try:
            rebuild(writer, table, sets[name], fence=fence, request_id=f"r{round_}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n, t)) for n, t in (("a", 5), ("b", 6))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


@pytest.mark.parametrize("fenced", [False, True], ids=["unfenced", "fenced-5-and-6"])
def test_item5_two_concurrent_rebuilds_of_one_date_end_with_exactly_one_writers_rows(
    bigquery_client: Any, table: str, writer: BigQueryWriter, fenced: bool
) -> None:
    """Overlapping rebuilds, started together, five times: each time one writer's set, no mix."""
    writer.upsert(table, batch(range(40, 60), "before"), key=KEY, partition_date=DAY)
    sets = {"a": batch(range(0, 30), "a"), "b": batch(range(15, 45), "b")}
    expected = {
        name: [(DAY, r["player"], name) for r in rows] for name, rows in sets.items()
    }
    for round_ in range(5):
        errors = race(writer, table, sets, fenced, round_)

        day = contents(bigquery_client, table, DAY)
        assert day in (expected["a"], expected["b"]), round_
        # Fenced: the lower token may lose its race (StaleFenceError, nothing written);
        # whichever of them committed last is what the day holds.
        assert all(fenced and isinstance(e, StaleFenceError) for e in errors), errors
        if errors:
            assert day == expected["b"]


def test_item5_a_rebuild_needs_a_partition_column(
    bigquery_client: Any, bigquery_dataset: str, writer: BigQueryWriter
) -> None:
    """A table without a partition column cannot be rebuilt by date: refused, nothing written."""
    bigquery_client.query(
        f"CREATE TABLE `{bigquery_client.project}.{bigquery_dataset}.flat` "
        "(game_date DATE, player STRING)"
    ).result()

    with pytest.raises(InvalidInputError, match="partition column"):
        writer.replace_partition(f"{bigquery_dataset}.flat", DAY, [
            {"game_date": DAY, "player": "a"}], key=KEY)
    report = writer.replace_partition(
        f"{bigquery_dataset}.flat", DAY, [{"game_date": DAY, "player": "a"}], key=KEY,
        partition_column="game_date",
    )
    assert report.inserted == 1
