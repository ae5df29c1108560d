"""
BigQueryWriter at unit level: the job-id protocol (409 = already ran), retries,
error mapping, fencing errors and input checks, on a fake client.

What needs real SQL (the MERGE's winners, concurrency, fence rows) is in
``test_writer_emulator.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from writer_fakes import FakeBigQuery, job_error, merge_ids

from pipeline_reliability import (
    ConfigurationError,
    InvalidInputError,
    StaleFenceError,
    WriteFailedError,
)
from pipeline_reliability.dedup._policy import DedupPolicy
from pipeline_reliability.dedup._sql import FenceSpec, MergePlan, merge_script, replace_script
from pipeline_reliability.retry import RetryPolicy, set_testing
from pipeline_reliability.sinks.writer import BigQueryWriter
from pipeline_reliability.testing import FakeClock

TABLE = "stats.player_game"
DAY = "2026-01-31"
KEY = ("game_date", "player")
SRC = Path(__file__).resolve().parents[2] / "src" / "pipeline_reliability"


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
    """A fake client with a table partitioned by game_date."""
    return FakeBigQuery()


@pytest.fixture
def writer(client: FakeBigQuery) -> BigQueryWriter:
    """A writer on the fake client, with a fixed clock (one replay window)."""
    return BigQueryWriter(client, retry=RetryPolicy(attempts=4, deadline=None), clock=FakeClock())


def rows(*points: int, player: str = "lebron-james") -> list[dict[str, Any]]:
    """Rows of one player on DAY, one per points value, processed an hour apart."""
    return [
        {
            "game_date": DAY,
            "player": player,
            "points": p,
            "processed_at": datetime(2026, 1, 31, i, tzinfo=UTC),
        }
        for i, p in enumerate(points)
    ]


def upsert(writer: BigQueryWriter, batch: list[dict[str, Any]], **kwargs: Any) -> Any:
    """The production call: key (game_date, player), latest processed_at wins."""
    kwargs.setdefault("partition_date", DAY)
    return writer.upsert(TABLE, batch, key=KEY, order_by="processed_at", **kwargs)


def test_upsert_dedups_loads_merges_and_drops_staging(
    writer: BigQueryWriter, client: FakeBigQuery
) -> None:
    """One call: dedup in Python, one load of the winners, one MERGE, staging dropped."""
    report = upsert(writer, rows(10, 20, 30) + rows(5, player="anthony-davis"))

    assert report.deduplicated == 2
    assert (report.inserted, report.updated) == (1, 0)
    assert client.loads[0].count(b"\n") == 2
    assert b'"points": 30' in client.loads[0]
    assert len(client.merges_run) == 1
    assert len(client.dropped) == 1
    assert client.dropped[0].split(".")[-1].startswith("_pr_stage_")
    assert report.job_ids[-1] == client.merges_run[0]
    assert report.already_applied is False


def test_f9_a_retried_save_that_already_succeeded_does_not_write_twice(
    writer: BigQueryWriter, client: FakeBigQuery
) -> None:
    """F9: an outer retry of a save that succeeded (response lost) finds the job, runs nothing."""
    first = upsert(writer, rows(10, 20))
    calls_before = len(client.calls)

    again = upsert(writer, rows(10, 20))

    assert client.merges_run == [first.job_ids[-1]]
    assert again.already_applied is True
    assert (again.inserted, again.updated) == (first.inserted, first.updated)
    assert "load" not in client.calls[calls_before:]


def test_a_lost_insert_response_is_answered_by_409_and_the_job_is_reused(
    writer: BigQueryWriter, client: FakeBigQuery
) -> None:
    """The MERGE ran but its insert response was lost: the retry gets 409 and uses that job."""
    job_id = f"pr_merge_{_digest(writer, client, rows(1))}_0"
    client.jobs.clear()
    client.merges_run.clear()
    client.fail_insert[job_id] = gexc.ServiceUnavailable("reset")  # type: ignore[no-untyped-call]

    report = upsert(writer, rows(1))

    assert client.merges_run == [job_id]
    assert report.job_ids[-1] == job_id
    assert report.already_applied is False


def test_a_polling_error_keeps_the_job_id(writer: BigQueryWriter, client: FakeBigQuery) -> None:
    """A transient error while waiting never starts a second run under a new id."""
    job_id = f"pr_merge_{_digest(writer, client, rows(2))}_0"
    client.jobs.clear()
    client.merges_run.clear()
    client.fail_poll[job_id] = [gexc.ServiceUnavailable("poll")]  # type: ignore[no-untyped-call]

    report = upsert(writer, rows(2))

    assert client.merges_run == [job_id]
    assert report.job_ids[-1] == job_id


def test_a_serialization_conflict_is_retried_under_the_next_id(
    writer: BigQueryWriter, client: FakeBigQuery
) -> None:
    """F8: "Could not serialize access ... concurrent update" is retried under a new job id."""
    digest = _digest(writer, client, rows(3))
    client.jobs.clear()
    client.merges_run.clear()
    client.fail_job[f"pr_merge_{digest}_0"] = job_error(
        "Could not serialize access to table demo-test:stats.player_game due to concurrent update"
    )
    client.fail_job[f"pr_merge_{digest}_1"] = job_error(
        "Transaction is aborted due to concurrent update against table demo-test:stats.player_game"
    )

    report = upsert(writer, rows(3))

    assert merge_ids(client) == [f"pr_merge_{digest}_{n}" for n in range(3)]
    assert client.merges_run == [f"pr_merge_{digest}_2"]
    assert report.job_ids[-1] == f"pr_merge_{digest}_2"


def test_a_retried_call_skips_failed_runs_and_reuses_the_successful_one(
    writer: BigQueryWriter, client: FakeBigQuery
) -> None:
    """The probe walks past runs that failed (rolled back) to the run that succeeded."""
    digest = _digest(writer, client, rows(4))
    client.jobs.clear()
    client.merges_run.clear()
    client.fail_job[f"pr_merge_{digest}_0"] = job_error("backendError", 500)
    upsert(writer, rows(4))

    again = upsert(writer, rows(4))

    assert again.already_applied is True
    assert client.merges_run == [f"pr_merge_{digest}_1"]


def test_a_permanent_error_raises_write_failed_with_the_job_id(
    writer: BigQueryWriter, client: FakeBigQuery
) -> None:
    """A refused MERGE raises WriteFailedError naming the job, chained; staging is dropped."""
    digest = _digest(writer, client, rows(5))
    client.jobs.clear()
    client.fail_job[f"pr_merge_{digest}_0"] = job_error("Syntax error: Unexpected keyword")

    with pytest.raises(WriteFailedError) as caught:
        upsert(writer, rows(5))

    assert caught.value.job_id == f"pr_merge_{digest}_0"
    assert isinstance(caught.value.__cause__, gexc.BadRequest)
    assert len(client.dropped) == 1
    assert len(merge_ids(client)) == 1


def test_a_stale_fence_raises_stale_fence_error_and_is_not_retried(
    writer: BigQueryWriter, client: FakeBigQuery
) -> None:
    """The script's stale-fence failure becomes StaleFenceError(token, current), tried once."""
    digest = _digest(writer, client, rows(6), fence=Lease(3))
    client.jobs.clear()
    client.fail_job[f"pr_merge_{digest}_0"] = job_error(
        "Query error: pipeline_reliability.stale_fence current=7 at [4:8]"
    )

    with pytest.raises(StaleFenceError) as caught:
        upsert(writer, rows(6), fence=Lease(3))

    assert (caught.value.token, caught.value.current) == (3, 7)
    assert len(merge_ids(client)) == 1
    assert client.dropped


def test_job_ids_depend_on_content_fence_request_and_window(client: FakeBigQuery) -> None:
    """Same batch, same id; any change of content, token, request id or window: a new id."""
    clock = FakeClock()
    writer = BigQueryWriter(client, clock=clock)

    def merge_id(batch: list[dict[str, Any]], **kwargs: Any) -> str:
        return str(upsert(writer, batch, **kwargs).job_ids[-1])

    batch = rows(1, 2)
    base = merge_id(batch)
    assert merge_id(rows(1, 2)) == base
    assert merge_id([batch[1]]) == base  # the same batch after dedup
    others = {
        merge_id(rows(1, 3)),
        merge_id(rows(1, 2), fence=Lease(1)),
        merge_id(rows(1, 2), request_id="rerun"),
    }
    clock.advance(timedelta(hours=1))
    others.add(merge_id(rows(1, 2)))
    assert len(others | {base}) == 5


def test_staging_drop_failure_is_logged_not_raised(
    writer: BigQueryWriter, client: FakeBigQuery, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed drop does not fail a write that succeeded; the table expires by itself."""
    client.fail_drop = gexc.Forbidden("no permission")  # type: ignore[no-untyped-call]

    report = upsert(writer, rows(8))

    assert report.inserted == 1
    assert "dropping a staging table failed" in caplog.text


def test_empty_batches_touch_nothing(writer: BigQueryWriter, client: FakeBigQuery) -> None:
    """No rows, no BigQuery call at all."""
    report = upsert(writer, [])

    assert report.inserted == report.updated == 0
    assert client.calls == []


@pytest.mark.parametrize(
    ("batch", "kwargs", "error", "message"),
    [
        ([*rows(1), {"game_date": DAY, "player": None}], {}, InvalidInputError, "null key"),
        (rows(1), {"order_by": "updated_at"}, InvalidInputError, "no column"),
        (rows(1), {"partition_date": "2026-02-01"}, InvalidInputError, "outside partition"),
        (rows(1), {"partition_date": "31/01/2026"}, InvalidInputError, "YYYY-MM-DD"),
        (rows(1), {"fence": object()}, InvalidInputError, "token"),
        (rows(1), {"key": "player; DROP"}, InvalidInputError, "column name"),
        (rows(1), {"null_keys": "report"}, InvalidInputError, "null_keys"),
        ([{**rows(1)[0], "points": object()}], {}, InvalidInputError, "JSON"),
    ],
)
def test_bad_input_is_refused_before_any_job(  # noqa: PLR0917 (parametrised)
    writer: BigQueryWriter,
    client: FakeBigQuery,
    batch: list[dict[str, Any]],
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    """Null keys, unknown columns, rows of another date, bad fences: refused, nothing run."""
    kwargs.setdefault("key", KEY)
    kwargs.setdefault("order_by", "processed_at")
    kwargs.setdefault("partition_date", DAY)

    with pytest.raises(error, match=message):
        writer.upsert(TABLE, batch, **kwargs)

    assert [c for c in client.calls if c not in {"get_table"}] == []


def test_null_keys_drop_writes_the_rest_and_counts_them(
    writer: BigQueryWriter, client: FakeBigQuery
) -> None:
    """null_keys="drop" leaves null-key rows out and reports how many."""
    report = upsert(writer, [*rows(1), {"game_date": DAY, "player": None}], null_keys="drop")

    assert report.null_key_rows == 1
    assert client.loads[0].count(b"\n") == 1


def test_bad_configuration_is_refused(client: FakeBigQuery) -> None:
    """Malformed ids and windows raise ConfigurationError at construction."""
    with pytest.raises(ConfigurationError):
        BigQueryWriter(client, fence_table="not a table")
    with pytest.raises(ConfigurationError):
        BigQueryWriter(client, staging_dataset="bad/dataset")
    with pytest.raises(ConfigurationError):
        BigQueryWriter(client, replay_window=timedelta(0))
    with pytest.raises(InvalidInputError):  # a call argument, not an option
        BigQueryWriter(client).upsert("no_dataset", rows(1), key=KEY)


def test_partition_date_accepts_a_date(writer: BigQueryWriter, client: FakeBigQuery) -> None:
    """partition_date may be a date; the MERGE filters the partition column on it."""
    report = upsert(writer, rows(1), partition_date=date(2026, 1, 31))

    assert report.partition == DAY
    script = client.jobs[report.job_ids[-1]].query or ""
    assert "T.`game_date` = DATE '2026-01-31'" in script


# A DELETE may appear only as this clause of the rebuild's one MERGE into the target.
_REBUILD_CLAUSE = re.compile(
    r"\nWHEN NOT MATCHED BY SOURCE AND T\.`game_date` = DATE '2026-01-31' THEN DELETE$"
)
_DESTRUCTIVE = re.compile(r"\b(DELETE|TRUNCATE)\b|BY\s+SOURCE")


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";\n") if s.strip()]


def assert_no_standalone_delete(script: str) -> None:
    """
    The F8 rule for one script as sent to BigQuery: no statement removes rows on its
    own. An upsert's script has no DELETE at all; a rebuild's has exactly one, the
    `WHEN NOT MATCHED BY SOURCE AND <partition filter> THEN DELETE` clause of its
    single MERGE into the target, which inserts the new rows in the same statement.
    """
    statements = _statements(script)
    for statement in statements:
        assert not re.match(r"(DELETE|TRUNCATE|INSERT|UPDATE)\b", statement), statement
    destructive = [s for s in statements if _DESTRUCTIVE.search(s)]
    if not destructive:
        return
    assert len(destructive) == 1, destructive
    (merge,) = destructive
    assert merge.startswith("MERGE `p.d.t` AS T") or merge.startswith("MERGE `demo-test."), merge
    assert _REBUILD_CLAUSE.search(merge), merge
    assert len(_DESTRUCTIVE.findall(merge)) == 2  # the clause's BY SOURCE and its DELETE
    assert "WHEN NOT MATCHED THEN INSERT" in merge


def test_f8_item5_no_statement_is_a_standalone_delete() -> None:
    """
    F8 / issue 11 item 5: a DELETE appears only as the `WHEN NOT MATCHED BY SOURCE ...
    THEN DELETE` clause inside replace_partition's MERGE; no statement anywhere is a
    standalone DELETE (or TRUNCATE), so there is never a delete followed by an insert.
    """
    writer_modules = ("writer.py", "_write.py", "_merge_jobs.py")
    sources = [*(SRC / "sinks" / m for m in writer_modules), *(SRC / "dedup").glob("*.py")]
    policies = [
        DedupPolicy.build(KEY, order_by, keep)
        for order_by in (None, "processed_at", ("processed_at", "points"))
        for keep in ("first", "last")
    ]
    fence = FenceSpec("`p.d.write_fences`", "p.d.t", DAY, 4)
    columns = ("game_date", "player", "points", "processed_at")
    plans = [
        MergePlan("`p.d.t`", "`p.d.s`", columns, p, "game_date", True, DAY, f)
        for p in policies
        for f in (None, fence)
    ]

    for path in sources:
        text = path.read_text()
        assert "TRUNCATE" not in text, path
        # Every DELETE in the code is the clause (in the SQL or the docs describing it).
        assert len(re.findall(r"\bDELETE\b", text)) == text.count("THEN DELETE"), path
        if path.name != "_sql.py":
            assert 'THEN DELETE"' not in text, path  # only _sql.py renders the clause
    for plan in plans:
        upsert_script = merge_script(plan)
        assert _DESTRUCTIVE.findall(upsert_script) == []
        assert upsert_script.count("MERGE `p.d.t`") == 1
        rebuild = replace_script(plan)
        assert rebuild.count("MERGE `p.d.t`") == 1
        assert rebuild.count("DELETE") == 1
        assert_no_standalone_delete(upsert_script)
        assert_no_standalone_delete(rebuild)


def test_f8_item5_every_script_sent_has_no_standalone_delete(
    writer: BigQueryWriter, client: FakeBigQuery
) -> None:
    """What really reaches the client, for upserts and rebuilds alike, obeys the same rule."""
    upsert(writer, rows(1, 2))
    upsert(writer, rows(3), fence=Lease(2))
    writer.replace_partition(TABLE, DAY, rows(4), key=KEY, order_by="processed_at")
    writer.replace_partition(TABLE, DAY, rows(5), key=KEY, fence=Lease(3))
    writer.replace_partition(TABLE, DAY, [], key=KEY, allow_empty=True)

    scripts = [job.query for job in client.jobs.values() if job.query]
    assert len(scripts) == 5
    for script in scripts:
        assert_no_standalone_delete(script)
    assert sum("THEN DELETE" in script for script in scripts) == 3


def _digest(
    writer: BigQueryWriter, client: FakeBigQuery, batch: list[dict[str, Any]], **kwargs: Any
) -> str:
    """Run the batch once to learn its job-id digest (tests then reset the fake)."""
    report = upsert(writer, batch, **kwargs)
    client.calls.clear()
    client.dropped.clear()
    return str(report.job_ids[-1]).removeprefix("pr_merge_").rsplit("_", 1)[0]
