"""One smoke test per emulator, through the real Google client libraries."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline_reliability.sinks._bigquery import ndjson_file


@pytest.mark.firestore
def test_firestore_set_get_and_transaction(firestore_project: str) -> None:
    """The Firestore emulator serves set, get and a transactional read-modify-write."""
    from google.cloud import firestore

    client: Any = firestore.Client(project=firestore_project)
    try:
        ref = client.collection("smoke").document("doc")
        ref.set({"count": 1})

        @firestore.transactional
        def increment(tx: Any) -> None:
            snap = ref.get(transaction=tx)
            tx.update(ref, {"count": snap.get("count") + 1})

        increment(client.transaction())

        assert ref.get().to_dict() == {"count": 2}
    finally:
        client.close()


@pytest.mark.pubsub
def test_pubsub_publish_pull_ack(pubsub_project: str) -> None:
    """The Pub/Sub emulator serves topic and subscription creation, publish, pull and ack."""
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    publisher = PublisherClient()
    subscriber = SubscriberClient()
    topic = publisher.topic_path(pubsub_project, "smoke-topic")
    subscription = subscriber.subscription_path(pubsub_project, "smoke-sub")
    try:
        publisher.create_topic(name=topic)
        subscriber.create_subscription(name=subscription, topic=topic)
        publisher.publish(topic, b"hello", kind="smoke").result(timeout=30)

        response = subscriber.pull(
            subscription=subscription, max_messages=10, timeout=30, retry=None
        )
        messages = list(response.received_messages)
        subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in messages])

        assert [
            (m.message.data, m.message.attributes["kind"]) for m in messages
        ] == [(b"hello", "smoke")]
    finally:
        subscriber.close()
        publisher.stop()


@pytest.mark.bigquery
def test_bigquery_load_and_query(bigquery_client: Any, bigquery_dataset: str) -> None:
    """The BigQuery emulator serves dataset/table creation, an NDJSON file load and a query."""
    from google.cloud import bigquery

    table_id = f"{bigquery_client.project}.{bigquery_dataset}.smoke"
    schema = [
        bigquery.SchemaField("id", "INT64", mode="REQUIRED"),
        bigquery.SchemaField("name", "STRING"),
    ]
    bigquery_client.create_table(bigquery.Table(table_id, schema=schema))
    config = bigquery.LoadJobConfig(
        schema=schema, source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON
    )
    rows = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    bigquery_client.load_table_from_file(
        ndjson_file(rows), table_id, job_config=config
    ).result(timeout=60)

    result = bigquery_client.query(
        f"SELECT id, name FROM `{table_id}` WHERE id > @low ORDER BY id",
        job_config=bigquery.QueryJobConfig(
            query_parameters=[bigquery.ScalarQueryParameter("low", "INT64", 0)]
        ),
    ).result(timeout=60)

    assert [(r["id"], r["name"]) for r in result] == [(1, "a"), (2, "b")]
