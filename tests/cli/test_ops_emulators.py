"""
The operator commands end to end on the Firestore, Pub/Sub and BigQuery
emulators: each command does its job, and bad input (unknown phase, invalid
date, missing table) is one line on stderr, exit status 2, nothing written.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cli_helpers import Cli, Run

from pipeline_reliability.breaker import BreakerState, CircuitBreaker
from pipeline_reliability.cli._phases import PRESETS
from pipeline_reliability.completion import CompletionTracker, LedgerRow, PhaseSpec
from pipeline_reliability.errors import LockLostError
from pipeline_reliability.lock import DateLock
from pipeline_reliability.stores.firestore import FirestoreStore

DATE = "2026-01-31"
PHASE3 = PhaseSpec("phase3", PRESETS["phase3"], next_phase="phase4")
LAST = "upcoming_team_game_context"
FIRST_FOUR = sorted(set(PRESETS["phase3"]) - {LAST})


def _documents(project: str) -> dict[str, dict[str, Any]]:
    """Every document of a Firestore emulator project, by path."""
    from google.cloud import firestore

    client = firestore.Client(project=project)
    try:
        return {
            doc.reference.path: doc.to_dict() or {}
            for collection in client.collections()
            for doc in collection.stream()
        }
    finally:
        client.close()  # type: ignore[no-untyped-call]


def _one_line_error(run: Run, *words: str) -> None:
    """Exit 2 and one error line (after the lines that name the project, topic, dataset)."""
    assert run.status == 2, (run.out, run.err)
    assert run.out == ""
    lines = [line for line in run.err.strip().splitlines()
             if not re.match(r"pipeline-reliability: (project|topic)=", line)]
    assert len(lines) == 1, run.err
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def store(firestore_store: FirestoreStore) -> FirestoreStore:
    """The Firestore emulator project the commands run against."""
    return firestore_store


@pytest.fixture
def project(store: FirestoreStore) -> str:
    """The ``--project`` of the commands."""
    assert store.project is not None
    return store.project


@pytest.fixture
def tracker(store: FirestoreStore) -> CompletionTracker:
    """A tracker over the same documents as the commands' phase3 preset."""
    return CompletionTracker(store, [PHASE3], owner="test-processor")


@pytest.fixture
def four_done(tracker: CompletionTracker) -> CompletionTracker:
    """Four of the five phase-3 processors reported for DATE."""
    for name in FIRST_FOUR:
        tracker.record_completion("phase3", DATE, name, execution_id=f"{name}-run1")
    return tracker


@pytest.fixture
def topic(pubsub_emulator: str) -> Iterator[tuple[str, str]]:
    """A fresh Pub/Sub topic and a subscription on it: (topic path, subscription path)."""
    from google.cloud import pubsub_v1

    project = f"ps-{uuid.uuid4().hex[:10]}"
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic_path = publisher.topic_path(project, "triggers")
    sub_path = subscriber.subscription_path(project, "triggers-sub")
    publisher.create_topic(name=topic_path)
    subscriber.create_subscription(name=sub_path, topic=topic_path)
    yield topic_path, sub_path
    subscriber.close()


def _pull(subscription: str) -> list[Any]:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    try:
        response = subscriber.pull(subscription=subscription, max_messages=10, timeout=10)
        return [m.message for m in response.received_messages]
    finally:
        subscriber.close()


# -- status -----------------------------------------------------------------------------------


@pytest.mark.firestore
def test_status_shows_missing_processors_and_trigger(
    cli: Cli, project: str, four_done: CompletionTracker
) -> None:
    """status lists done and missing processors and the trigger state."""
    run = cli("--project", project, "status", "phase3", DATE)

    assert run.status == 0, run.err
    assert f"phase3 {DATE}: INCOMPLETE (4/5)" in run.out
    assert f"missing  {LAST}" in run.out
    assert "trigger: none" in run.out


@pytest.mark.firestore
def test_status_json_and_check(cli: Cli, project: str, four_done: CompletionTracker) -> None:
    """--json gives the same facts as data; --check exits 1 while not triggered."""
    run = cli("status", "phase3", DATE, "--project", project, "--json")
    checked = cli("status", "phase3", DATE, "--project", project, "--check")

    data = json.loads(run.out)
    assert data["count"] == 4
    assert data["missing"] == [LAST]
    assert data["trigger"]["state"] == "none"
    assert checked.status == 1


@pytest.mark.firestore
@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["status", "phase9", DATE], ["unknown phase 'phase9'"]),
        (["status", "phase3", "2026-02-30"], ["invalid date"]),
        (["status", "phase3", "yesterday"], ["invalid date"]),
        (["sweep", "phase3", DATE], ["--topic"]),
        (["sweep", "nope", DATE, "--dry-run"], ["unknown phase"]),
        (["reconcile", "phase3", "2026-13-01", "--output", f"{LAST}=ds.t"], ["invalid date"]),
        (["replay", "phase3", "2026-01-32", "--ledger-table", "ds.t"], ["invalid date"]),
        (["lock", "show", "writer", "31-01-2026"], ["invalid date"]),
        (["lock", "break", "writer", DATE], ["--force"]),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    cli: Cli, project: str, argv: list[str], words: list[str]
) -> None:
    """Unknown phase, invalid date, a missing --force: one line, exit 2, no document written."""
    run = cli("--project", project, *argv)

    _one_line_error(run, *words)
    assert _documents(project) == {}


# -- sweep ------------------------------------------------------------------------------------


@pytest.mark.firestore
@pytest.mark.pubsub
def test_sweep_publishes_a_released_trigger_once(
    cli: Cli, project: str, four_done: CompletionTracker, topic: tuple[str, str]
) -> None:
    """A trigger whose publish failed is published by sweep, once, and confirmed."""
    result = four_done.record_completion("phase3", DATE, LAST, execution_id="last-run1")
    assert result.trigger is not None
    four_done.release_trigger(result.trigger, "publish failed")

    dry = cli("--project", project, "sweep", "phase3", DATE, "--dry-run")
    run = cli("--project", project, "sweep", "phase3", DATE, "--topic", topic[0])
    again = cli("--project", project, "sweep", "phase3", DATE, "--topic", topic[0])

    assert dry.out.strip() == f"phase3 {DATE}: due"
    assert run.status == 0, run.err
    assert run.out.strip() == f"phase3 {DATE}: published"
    assert again.out.strip() == f"phase3 {DATE}: triggered"
    messages = _pull(topic[1])
    assert [m.attributes["trigger_id"] for m in messages] == [f"phase3:{DATE}"]
    assert four_done.status("phase3", DATE).triggered


@pytest.mark.firestore
@pytest.mark.pubsub
def test_item10_sweep_to_a_missing_topic_is_one_line_and_publishes_nothing(
    cli: Cli, project: str, four_done: CompletionTracker, pubsub_emulator: str
) -> None:
    """--topic does-not-exist: one error line naming the topic, exit 2, the claim untouched."""
    result = four_done.record_completion("phase3", DATE, LAST, execution_id="last-run1")
    assert result.trigger is not None
    four_done.release_trigger(result.trigger, "publish failed")
    before = _documents(project)

    run = cli("--project", project, "sweep", "phase3", DATE, "--topic", "does-not-exist")

    _one_line_error(run, f"projects/{project}/topics/does-not-exist does not exist")
    assert "Traceback" not in run.err
    assert _documents(project) == before


# -- reconcile --------------------------------------------------------------------------------


@pytest.fixture
def output_table(bigquery_client: Any, bigquery_dataset: str) -> str:
    """The missing processor's output table, holding rows for DATE."""
    table = f"{bigquery_dataset}.{LAST}"
    bigquery_client.query(
        f"CREATE TABLE `{table}` (game_date DATE, team STRING)"
    ).result()
    bigquery_client.query(
        f"INSERT INTO `{table}` (game_date, team) VALUES (DATE '{DATE}', 'BOS')"
    ).result()
    return table


@pytest.mark.firestore
@pytest.mark.pubsub
@pytest.mark.bigquery
def test_reconcile_records_what_bigquery_holds_and_triggers(
    cli: Cli, project: str, four_done: CompletionTracker, output_table: str,
    topic: tuple[str, str],
) -> None:
    """A processor whose rows exist is recorded as reconciled and the trigger is published."""
    run = cli("--project", project, "reconcile", "phase3", DATE, "--output",
              f"{LAST}={output_table}", "--topic", topic[0], "--json")

    assert run.status == 0, run.err
    data = json.loads(run.out)
    assert data["reconciled"] == [LAST]
    assert data["count"] == 5
    assert data["triggered"] is True
    status = four_done.status("phase3", DATE)
    assert status.records[LAST].status == "reconciled"
    assert status.triggered
    assert len(_pull(topic[1])) == 1


@pytest.mark.firestore
@pytest.mark.bigquery
def test_reconcile_with_a_missing_table_writes_nothing(
    cli: Cli, project: str, four_done: CompletionTracker, bigquery_dataset: str
) -> None:
    """A missing output table is one line, exit 2, and the date is left as it was."""
    before = _documents(project)

    run = cli("--project", project, "reconcile", "phase3", DATE, "--output",
              f"{LAST}={bigquery_dataset}.no_such_table")

    _one_line_error(run, "no_such_table")
    assert _documents(project) == before


# -- replay and bootstrap ---------------------------------------------------------------------


@pytest.mark.firestore
@pytest.mark.pubsub
@pytest.mark.bigquery
def test_bootstrap_then_replay_the_ledger(  # noqa: PLR0917 - fixtures
    cli: Cli, project: str, four_done: CompletionTracker, bigquery_client: Any,
    bigquery_dataset: str, topic: tuple[str, str],
) -> None:
    """bootstrap creates the ledger table (idempotently); replay applies its row and triggers."""
    from pipeline_reliability.sinks.ledger import BigQueryLedger

    dataset = f"{bigquery_client.project}.{bigquery_dataset}"
    created = cli("bootstrap", "--dataset", dataset)
    again = cli("bootstrap", "--dataset", bigquery_dataset, "--project", bigquery_client.project)
    assert created.status == again.status == 0, created.err
    assert "completion_ledger" in created.out
    assert again.out.startswith("nothing to create")
    ledger = f"{bigquery_dataset}.completion_ledger"
    now = datetime.now(UTC)
    BigQueryLedger(ledger).append(LedgerRow(
        phase="phase3", date=DATE, processor=LAST, execution_id="degraded-run",
        status="success", event_time=now, recorded_time=now, primary_ok=False,
    ))

    run = cli("--project", project, "replay", "phase3", DATE, "--ledger-table", ledger,
              "--topic", topic[0], "--json")
    twice = cli("--project", project, "replay", "phase3", DATE, "--ledger-table", ledger,
                "--topic", topic[0], "--json")

    assert run.status == 0, run.err
    assert json.loads(run.out)["applied"] == 1
    assert json.loads(run.out)["triggered"] == [DATE]
    assert json.loads(twice.out)["applied"] == 0
    assert four_done.status("phase3", DATE).triggered


@pytest.mark.bigquery
def test_bootstrap_adds_the_columns_a_v1_ledger_lacks(
    cli: Cli, bigquery_client: Any, bigquery_dataset: str
) -> None:
    """``--add-missing-columns`` adds ``completed_at`` to an old ledger, once."""
    table = f"{bigquery_dataset}.completion_ledger"
    dataset = f"{bigquery_client.project}.{bigquery_dataset}"
    assert cli("bootstrap", "--dataset", dataset).status == 0
    old = bigquery_client.get_table(table)
    old.schema = [f for f in old.schema if f.name != "completed_at"]
    bigquery_client.delete_table(table)
    bigquery_client.create_table(old)

    plain = cli("bootstrap", "--dataset", dataset)
    run = cli("bootstrap", "--dataset", dataset, "--add-missing-columns")
    again = cli("bootstrap", "--dataset", dataset, "--add-missing-columns", "--json")

    assert plain.out.startswith("nothing to create")
    assert run.status == 0, run.err
    assert run.out.strip() == f"added column(s) completed_at to {bigquery_client.project}.{table}"
    assert json.loads(again.out)["columns_added"] == {}


@pytest.mark.firestore
@pytest.mark.bigquery
def test_replay_from_a_missing_table_writes_nothing(
    cli: Cli, project: str, four_done: CompletionTracker, bigquery_dataset: str
) -> None:
    """A missing ledger table is one line, exit 2, nothing written."""
    before = _documents(project)

    run = cli("--project", project, "replay", "phase3", DATE, "--ledger-table",
              f"{bigquery_dataset}.missing_ledger")

    _one_line_error(run, "missing_ledger")
    assert _documents(project) == before


@pytest.mark.bigquery
def test_bootstrap_rejects_a_bad_dataset_name(cli: Cli, bigquery_emulator: str) -> None:
    """An invalid dataset id is one line and exit 2."""
    run = cli("bootstrap", "--dataset", "no spaces allowed")

    _one_line_error(run, "--dataset")


# -- breaker ----------------------------------------------------------------------------------


@pytest.mark.firestore
def test_breaker_show_open_close(cli: Cli, project: str, store: FirestoreStore) -> None:
    """breaker open/close force the shared state every instance sees."""
    instance = CircuitBreaker("stats-api", store, cache_ttl=0)

    shown = cli("--project", project, "breaker", "show", "stats-api")
    opened = cli("--project", project, "breaker", "open", "stats-api")
    seen_open = instance.state
    closed = cli("--project", project, "breaker", "close", "stats-api", "--json")

    assert shown.out.startswith("breaker 'stats-api': no state recorded")
    assert opened.status == 0, opened.err
    assert "open (was closed)" in opened.out
    assert seen_open is BreakerState.OPEN
    assert json.loads(closed.out)["state"] == "closed"
    assert instance.state is BreakerState.CLOSED


# -- lock -------------------------------------------------------------------------------------


@pytest.mark.firestore
def test_lock_show_and_break(cli: Cli, project: str, store: FirestoreStore) -> None:
    """lock show names the holder and token; lock break --force invalidates that token."""
    lock = DateLock(store, "phase4-writer", DATE, ttl=600, owner="worker-a")
    lease = lock.acquire()

    shown = cli("--project", project, "lock", "show", "phase4-writer", DATE, "--json")
    refused = cli("--project", project, "lock", "break", "phase4-writer", DATE)
    still = DateLock.inspect(store, "phase4-writer", DATE)
    broken = cli("--project", project, "lock", "break", "phase4-writer", DATE, "--force")
    after = cli("--project", project, "lock", "show", "phase4-writer", DATE)

    view = json.loads(shown.out)
    assert view["held"] is True
    assert view["holder"] == "worker-a"
    assert view["token"] == lease.token
    _one_line_error(refused, "--force")
    assert still.held
    assert broken.status == 0, broken.err
    assert f"invalidated token {lease.token}" in broken.out
    assert "free" in after.out
    with pytest.raises(LockLostError):
        lock.release()


# -- credentials ------------------------------------------------------------------------------


def test_missing_credentials_are_one_line_exit_2(tmp_path: Any) -> None:
    """Without emulators or credentials a command says so in one line and exits 2."""
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "NO_GCE_CHECK": "True",
        "GCE_METADATA_HOST": "127.0.0.1:9", "GOOGLE_CLOUD_PROJECT": "some-project",
        "PYTHONPATH": os.pathsep.join(sys.path),  # this source, not an installed copy
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline_reliability.cli", "status", "phase3", DATE],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )

    assert proc.returncode == 2
    assert proc.stdout == ""
    banner, error = proc.stderr.strip().splitlines()
    assert banner == "pipeline-reliability: project=some-project database=(default)"
    assert "credentials" in error
