"""
Acceptance: the tracker on the Firestore + Pub/Sub + BigQuery emulators.

Five phase-3 processors each publish one completion; Pub/Sub delivers every
message three times, from three threads, as production CloudEvents. One
instance has lost Firestore (a FaultyStore in outage in front of the same
FirestoreStore), so the deliveries it handles land in the BigQuery ledger as
degraded. ``replay_ledger`` then completes the date: exactly one trigger
message reaches the topic, the store counts five, one ledger row was replayed.
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pipeline_reliability.completion import CompletionResult, CompletionTracker, PhaseSpec
from pipeline_reliability.pubsub import PubSubTriggerPublisher, parse_completion_message
from pipeline_reliability.retry import RetryPolicy
from pipeline_reliability.sinks.execution_log import BigQueryExecutionLog
from pipeline_reliability.sinks.ledger import BigQueryLedger
from pipeline_reliability.stores.firestore import FirestoreStore
from pipeline_reliability.testing import FaultyStore

pytestmark = [pytest.mark.firestore, pytest.mark.pubsub, pytest.mark.bigquery]

DATE = "2026-01-31"
# The class names the phase-3 processors publish, and the config names they normalise to.
PUBLISHED = {
    "PlayerGameSummaryProcessor": "player_game_summary",
    "TeamDefenseGameSummaryProcessor": "team_defense_game_summary",
    "TeamOffenseGameSummaryProcessor": "team_offense_game_summary",
    "AsyncUpcomingPlayerGameContextProcessor": "upcoming_player_game_context",
    "UpcomingTeamGameContextProcessor": "upcoming_team_game_context",
}
OUTAGE_PROCESSOR = "UpcomingTeamGameContextProcessor"
DELIVERIES = 3
THREADS = 3  # the Firestore emulator livelocks above ~3 concurrent transactions per document


class CloudEvent:
    """What functions-framework hands a Pub/Sub-triggered Cloud Function (gen2)."""

    def __init__(self, message_id: str, body: dict[str, Any]) -> None:
        self.data = {
            "message": {
                "data": base64.b64encode(json.dumps(body).encode()).decode(),
                "messageId": message_id,
                "publishTime": "2026-01-31T06:00:00Z",
                "attributes": {},
            },
            "subscription": "projects/nba/subscriptions/phase3-complete-sub",
        }
        self.attributes = {
            "id": message_id,
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
        }

    def __getitem__(self, key: str) -> str:
        return self.attributes[key]


def completion_event(index: int, class_name: str) -> CloudEvent:
    """The CloudEvent of one processor's completion (PRODUCTION-SHAPES §2.1-2.2)."""
    return CloudEvent(
        f"msg-{index}",
        {
            "processor_name": class_name,
            "phase": "phase_3_analytics",
            "execution_id": f"run-{index}",
            "correlation_id": "5f0c9e21",
            "game_date": DATE,
            "output_table": PUBLISHED[class_name],
            "output_dataset": "nba_analytics",
            "status": "success",
            "record_count": 100 + index,
            "timestamp": "2026-01-31T05:59:58+00:00",
            "metadata": {"is_incremental": False, "entities_changed": []},
        },
    )


@pytest.fixture(autouse=True)
def _no_retry_sleeps() -> None:
    """Keep real backoff here (overrides the package's no-sleep fixture).

    The Firestore emulator resolves a conflict only by a 2 s lock timeout;
    when a transaction gives up after its attempts, retrying it at once
    re-creates the collision, and jittered backoff spreads the threads apart
    (EMULATORS.md §3).
    """


@pytest.fixture
def trigger_topic(
    pubsub_emulator: str, pubsub_project: str
) -> Iterator[tuple[str, Callable[[], list[Any]]]]:
    """The phase-4 trigger topic with one subscription, and a pull-everything function."""
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    publisher, subscriber = PublisherClient(), SubscriberClient()
    topic = publisher.topic_path(pubsub_project, "phase4-trigger")
    subscription = subscriber.subscription_path(pubsub_project, "phase4-trigger-sub")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscription, topic=topic)

    def pull_all() -> list[Any]:
        messages: list[Any] = []
        while True:
            response = subscriber.pull(
                subscription=subscription, max_messages=100, return_immediately=True, timeout=10
            )
            if not response.received_messages:
                return messages
            messages += [m.message for m in response.received_messages]
            subscriber.acknowledge(
                subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
            )

    yield topic, pull_all
    subscriber.close()


def test_duplicates_threads_and_an_outage_give_exactly_one_trigger(
    firestore_store: FirestoreStore,
    bigquery_client: Any,
    bigquery_dataset: str,
    trigger_topic: tuple[str, Callable[[], list[Any]]],
) -> None:
    """15 deliveries from 3 threads, one instance in outage, then a replay: exactly one trigger."""
    topic, pull_all = trigger_topic
    started = time.monotonic()
    ledger = BigQueryLedger(f"{bigquery_dataset}.completion_ledger", bigquery_client)
    execution_log = BigQueryExecutionLog(
        f"{bigquery_dataset}.phase_execution_log", bigquery_client
    )
    ledger.create_table()
    execution_log.create_table()
    publish = PubSubTriggerPublisher(topic, timeout=10)
    spec = PhaseSpec("phase3", frozenset(PUBLISHED.values()), next_phase="phase4")
    # A conflict on the emulator costs ~2 s: the healthy instance may retry for long.
    patient = RetryPolicy(attempts=12, deadline=45.0, initial=0.2, maximum=2.0)

    def tracker(store: FaultyStore, owner: str, retry: RetryPolicy | None) -> CompletionTracker:
        return CompletionTracker(
            store, [spec], ledger, execution_log=execution_log, owner=owner, retry=retry
        )

    healthy = tracker(FaultyStore(firestore_store), "instance-1", patient)
    cut_off = FaultyStore(firestore_store)
    cut_off.set_outage(True)  # this instance cannot reach Firestore at all
    degraded = tracker(cut_off, "instance-2", None)  # the default retry, then the ledger

    events = [completion_event(i, name) for i, name in enumerate(PUBLISHED)]
    deliveries = [e for e in events for _ in range(DELIVERIES)]
    random.Random(7).shuffle(deliveries)

    def deliver(event: CloudEvent) -> CompletionResult:
        msg = parse_completion_message(event)
        # The outage processor's message is always handled by the cut-off instance.
        instance = degraded if msg.raw["processor_name"] == OUTAGE_PROCESSOR else healthy
        return instance.record_and_trigger("phase3", **msg.completion_kwargs(), publish=publish)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(deliver, deliveries))

    before_replay = healthy.status("phase3", DATE)
    nothing_yet = pull_all()
    replay = healthy.replay_and_trigger("phase3", [DATE], publish)
    again = healthy.replay_and_trigger("phase3", [DATE], publish)
    triggers = pull_all()
    after = healthy.status("phase3", DATE)
    elapsed = time.monotonic() - started
    print(f"\nend-to-end on the emulators: {elapsed:.1f} s, {firestore_store.stats}")

    assert [r.degraded for r in results].count(True) == DELIVERIES
    assert sum(r.counted for r in results) == 4
    assert sum(r.duplicate for r in results) == 4 * (DELIVERIES - 1)
    assert (before_replay.count, nothing_yet) == (4, [])
    assert (replay.rows, replay.applied) == (1, 1)
    assert (again.rows, again.applied) == (1, 0)
    assert after.count == 5
    assert len(triggers) == 1
    [trigger] = triggers
    assert trigger.attributes["trigger_id"] == "phase3:2026-01-31"
    assert json.loads(trigger.data)["completed"] == sorted(PUBLISHED.values())
    logged = list(
        bigquery_client.query(f"SELECT * FROM `{bigquery_dataset}.phase_execution_log`").result()
    )
    assert [(r["phase_name"], str(r["game_date"])) for r in logged] == [("phase3", DATE)]
    assert elapsed < 60
