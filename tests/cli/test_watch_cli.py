"""
``pipeline-reliability watch`` (exit 0 healthy, 1 alerts, 2 usage or
environment errors; table or ``--json``; alerts to a Pub/Sub topic) and
``sweep --replay-first``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Cli

from pipeline_reliability import MemoryStore
from pipeline_reliability.cli import _common, _ranges
from pipeline_reliability.completion import CompletionTracker, LedgerRow, PhaseSpec
from pipeline_reliability.testing import FakeClock

DATE = "2026-01-31"
NOW = datetime(2026, 1, 31, 20, 0, tzinfo=UTC)
CONFIG = """
[watch]
breakers = ["bigquery-api"]
breaker_open_minutes = 20

[phases.phase3]
expected = ["a", "b"]
next_phase = "phase4"

[phases.phase3.watch]
handoff_minutes = 10
expected_by = "18:00"

[phases.phase4]
expected = ["c"]

[phases.phase4.watch]
disabled = ["phase_late"]
"""


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> MemoryStore:
    """The store every command opens; watch judges at NOW."""
    shared = MemoryStore(clock=FakeClock(NOW - timedelta(hours=1)))
    monkeypatch.setattr(_common, "open_store", lambda args: shared)
    monkeypatch.setattr(_ranges, "utc_now", lambda: NOW)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "memory-project")
    return shared


@pytest.fixture
def config(tmp_path: Path) -> str:
    """A config file with watch thresholds."""
    path = tmp_path / "pipeline.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return str(path)


def _tracker(store: MemoryStore) -> CompletionTracker:
    return CompletionTracker(store, [PhaseSpec("phase3", {"a", "b"}, next_phase="phase4"),
                                     PhaseSpec("phase4", {"c"})], owner="test")


def test_item4_watch_healthy_exits_0(cli: Cli, store: MemoryStore, config: str) -> None:
    """Every phase complete and triggered: exit 0, one 'healthy' line."""
    tracker = _tracker(store)
    for phase, name in (("phase3", "a"), ("phase3", "b"), ("phase4", "c")):
        tracker.record_and_trigger(phase, DATE, name, execution_id="r", publish=lambda e: None)

    run = cli("watch", DATE, "--config", config)

    assert run.status == 0, run.err
    assert run.out.startswith("healthy: no alerts (phase3 2026-01-31, phase4 2026-01-31)")


def test_item4_watch_alerts_exit_1_once_then_resolved(
    cli: Cli, store: MemoryStore, config: str
) -> None:
    """A late phase: exit 1 and a table row 'new', then 'open', then 'resolved' once."""
    tracker = _tracker(store)
    tracker.record_completion("phase3", DATE, "a", execution_id="r")

    first = cli("watch", DATE, "--config", config)
    second = cli("watch", DATE, "--config", config, "--json")
    tracker.record_and_trigger("phase3", DATE, "b", execution_id="r", publish=lambda e: None)
    tracker.record_and_trigger("phase4", DATE, "c", execution_id="r", publish=lambda e: None)
    third = cli("watch", DATE, "--config", config, "--json")
    fourth = cli("watch", DATE, "--config", config, "--json")

    assert first.status == 1, first.err
    assert "CRITICAL  new    phase_late" in first.out
    assert "missing b" in first.out
    assert "1 alert(s) firing (1 new), 0 resolved" in first.out
    report = json.loads(second.out)
    assert second.status == 1
    assert [(a["rule"], a["new"]) for a in report["alerts"]] == [("phase_late", False)]
    assert third.status == 0
    assert [a["rule"] for a in json.loads(third.out)["resolved"]] == ["phase_late"]
    assert json.loads(fourth.out)["resolved"] == []


def test_item4_watch_default_dates_are_today_and_yesterday(
    cli: Cli, store: MemoryStore, config: str
) -> None:
    """Without dates each phase is watched on today and yesterday (its time zone)."""
    run = cli("watch", "--config", config, "--json")

    assert json.loads(run.out)["dates"] == {"phase3": ["2026-01-30", "2026-01-31"],
                                            "phase4": ["2026-01-30", "2026-01-31"]}


def test_item4_watch_checks_configured_breakers(cli: Cli, store: MemoryStore, config: str) -> None:
    """A [watch] breaker forced open longer than breaker_open_minutes alerts."""
    from pipeline_reliability.breaker import CircuitBreaker

    CircuitBreaker("bigquery-api", store, instance_id="x").force_open()
    tracker = _tracker(store)
    for phase, name in (("phase3", "a"), ("phase3", "b"), ("phase4", "c")):
        tracker.record_and_trigger(phase, DATE, name, execution_id="r", publish=lambda e: None)

    run = cli("watch", DATE, "--config", config, "--json")

    assert run.status == 1
    assert [a["rule"] for a in json.loads(run.out)["alerts"]] == ["breaker_open"]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["watch", "2026-02-30"], ["no such date"]),
        (["watch", "--phase", "nope"], ["unknown phase"]),
        (["watch", "--config", "{config}", "--from", DATE], ["--from and --to"]),
    ],
)
def test_item4_watch_usage_errors_exit_2(
    cli: Cli, store: MemoryStore, config: str, argv: list[str], words: list[str]
) -> None:
    """Bad dates or phases: one error line, exit 2, nothing written."""
    run = cli(*(a.replace("{config}", config) for a in argv))

    assert run.status == 2, run.err
    assert all(w in run.err for w in words), run.err
    assert store.stats.writes == 0


@pytest.mark.parametrize(
    "table",
    ['[watch]\nbogus = 1\n',
     '[phases.p]\nexpected = ["a"]\n[phases.p.watch]\nhandoff_minutes = -1\n',
     '[phases.p]\nexpected = ["a"]\n[phases.p.watch]\ndisabled = ["no_rule"]\n',
     '[phases.p]\nexpected = ["a"]\n[phases.p.watch]\nexpected_by = "25:00"\n'],
)
def test_item4_watch_bad_thresholds_exit_2(
    cli: Cli, store: MemoryStore, tmp_path: Path, table: str
) -> None:
    """Unknown keys, non-positive durations, unknown rules, bad times: exit 2."""
    path = tmp_path / "bad.toml"
    path.write_text(('[phases.q]\nexpected = ["a"]\n' if "phases" not in table else "")
                    + table, encoding="utf-8")

    run = cli("watch", "--config", str(path))

    assert run.status == 2, (run.out, run.err)
    assert "--config" in run.err


def test_item4_watch_without_a_project_exits_2(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No project to watch: exit 2, one line."""
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("GCLOUD_PROJECT", raising=False)

    run = cli("watch")

    assert run.status == 2
    assert "no Google Cloud project" in run.err


# -- on the emulators ---------------------------------------------------------------------------


@pytest.fixture
def topic(pubsub_emulator: str) -> Iterator[tuple[str, str]]:
    """A fresh Pub/Sub topic and a subscription on it: (topic path, subscription path)."""
    from google.cloud import pubsub_v1

    project = f"ps-{uuid.uuid4().hex[:10]}"
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic_path = publisher.topic_path(project, "alerts")
    sub_path = subscriber.subscription_path(project, "alerts-sub")
    publisher.create_topic(name=topic_path)
    subscriber.create_subscription(name=sub_path, topic=topic_path)
    yield topic_path, sub_path
    subscriber.close()


def _pull(subscription: str) -> list[Any]:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    try:
        response = subscriber.pull(subscription=subscription, max_messages=10, timeout=10)
        ids = [m.ack_id for m in response.received_messages]
        if ids:
            subscriber.acknowledge(subscription=subscription, ack_ids=ids)
        return [m.message for m in response.received_messages]
    finally:
        subscriber.close()


@pytest.mark.firestore
@pytest.mark.pubsub
def test_item4_watch_sends_new_and_resolved_alerts_to_pubsub_once(
    cli: Cli, firestore_store: Any, topic: tuple[str, str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On the emulators: the alert is one JSON message; a persisting one is not re-sent."""
    project = firestore_store.project
    path = tmp_path / "c.toml"
    path.write_text('[phases.phase3]\nexpected = ["a", "b"]\n', encoding="utf-8")
    tracker = CompletionTracker(firestore_store, [PhaseSpec("phase3", {"a", "b"})])
    tracker.record_completion("phase3", DATE, "a_typo", execution_id="r")
    monkeypatch.setattr(_ranges, "utc_now", lambda: NOW)

    first = cli("--project", project, "watch", DATE, "--config", str(path), "--topic", topic[0])
    sent = _pull(topic[1])
    second = cli("--project", project, "watch", DATE, "--config", str(path), "--topic", topic[0])

    assert first.status == second.status == 1, first.err
    assert len(sent) == 1
    body = json.loads(sent[0].data)
    assert (body["rule"], body["processor"], body["state"]) == (
        "ignored_completion", "a_typo", "firing")
    assert sent[0].attributes["alert_id"] == body["id"]
    assert _pull(topic[1]) == []


@pytest.mark.firestore
@pytest.mark.pubsub
@pytest.mark.bigquery
def test_item4_sweep_replay_first_replays_then_triggers(  # noqa: PLR0917 - fixtures
    cli: Cli, firestore_store: Any, topic: tuple[str, str], bigquery_client: Any,
    bigquery_dataset: str, tmp_path: Path,
) -> None:
    """sweep --replay-first applies the ledger's waiting row, then the date triggers."""
    from pipeline_reliability.sinks.ledger import BigQueryLedger

    project = firestore_store.project
    path = tmp_path / "c.toml"
    path.write_text('[phases.phase3]\nexpected = ["a", "b"]\n', encoding="utf-8")
    tracker = CompletionTracker(firestore_store, [PhaseSpec("phase3", {"a", "b"})])
    tracker.record_completion("phase3", DATE, "a", execution_id="r")
    created = cli("bootstrap", "--dataset", f"{bigquery_client.project}.{bigquery_dataset}")
    assert created.status == 0, created.err
    ledger = f"{bigquery_dataset}.completion_ledger"
    now = datetime.now(UTC)
    BigQueryLedger(ledger).append(LedgerRow("phase3", DATE, "b", "degraded", "success", now,
                                            now, primary_ok=False))

    plain = cli("--project", project, "sweep", "phase3", DATE, "--config", str(path),
                "--topic", topic[0], "--json")
    run = cli("--project", project, "sweep", "phase3", DATE, "--config", str(path),
              "--topic", topic[0], "--replay-first", "--ledger-table", ledger, "--json")

    assert plain.status == 0, plain.err
    assert json.loads(plain.out)["dates"][0]["action"] != "published"
    assert run.status == 0, run.err
    assert "replayed 1 of 1 ledger row(s) first" in run.err
    assert tracker.status("phase3", DATE).triggered


def test_item4_sweep_replay_first_needs_a_ledger_table(cli: Cli, store: MemoryStore) -> None:
    """--replay-first without --ledger-table (or with --dry-run) is a usage error."""
    run = cli("sweep", "phase3", DATE, "--replay-first", "--topic", "t")
    dry = cli("sweep", "phase3", DATE, "--replay-first", "--dry-run", "--ledger-table", "d.t")

    assert run.status == dry.status == 2
    assert "--replay-first needs --ledger-table" in run.err
