"""
``simulate --emulators``: the same game day on the Firestore, Pub/Sub and
BigQuery emulators, taken from ``*_EMULATOR_HOST`` or started here.

Time is real there (Firestore judges leases by its own clock), so the ticks
are short and the run sleeps between them.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from ..._clock import SystemClock
from ...errors import EmulatorError
from ._components import KEY, ORDER_BY, Components, common_components
from ._config import SimulationConfig
from ._table import MemoryTable

__all__ = ["emulator_components", "emulators_running"]

_VARIABLES = ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST")
_BQ_PROJECT = "demo-test"


@contextlib.contextmanager
def emulators_running() -> Iterator[None]:
    """
    Make sure the three emulators run and ``*_EMULATOR_HOST`` point at them.

    Emulators named by the environment are used as they are; the others are
    started here and stopped (and the environment restored) on exit.

    Raises:
        EmulatorError: an emulator is missing and could not be started.
    """
    from ...testing.emulators import emulator_env, start_bigquery, start_firestore, start_pubsub

    saved = {name: os.environ.get(name) for name in (*_VARIABLES, "GOOGLE_CLOUD_PROJECT")}
    started = []
    try:
        if not saved["FIRESTORE_EMULATOR_HOST"]:
            started.append(start_firestore())
            os.environ.update(emulator_env(firestore=started[-1]))
        if not saved["PUBSUB_EMULATOR_HOST"]:
            started.append(start_pubsub())
            os.environ.update(emulator_env(pubsub=started[-1]))
        if not saved["BIGQUERY_EMULATOR_HOST"]:
            started.append(start_bigquery(project=_BQ_PROJECT))
            os.environ.update(emulator_env(bigquery=started[-1], project=_BQ_PROJECT))
        os.environ.setdefault("GOOGLE_CLOUD_PROJECT", _BQ_PROJECT)
        yield
    finally:
        for emulator in reversed(started):
            emulator.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def emulator_components(config: SimulationConfig) -> Components:
    """
    Components on the emulators: FirestoreStore (a fresh project), the
    BigQuery fallback ledger (a fresh dataset), and trigger events published
    to a fresh Pub/Sub topic.
    """
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(emulators_running())
        return _build(config, stack)
    except BaseException:
        stack.close()
        raise


def _build(config: SimulationConfig, stack: contextlib.ExitStack) -> Components:
    from ...pubsub import PubSubTriggerPublisher
    from ...sinks._bigquery import make_client
    from ...sinks.bootstrap import bootstrap
    from ...sinks.ledger import BigQueryLedger
    from ...stores.firestore import FirestoreStore

    run = uuid.uuid4().hex[:10]
    project = f"sim-{run}"
    store = FirestoreStore(project=project)
    breaker_store = FirestoreStore(project=project)
    stack.callback(store.close)
    stack.callback(breaker_store.close)

    client = make_client(os.environ.get("GOOGLE_CLOUD_PROJECT"))
    dataset = f"sim_{run}"
    bootstrap(client, dataset)
    stack.callback(lambda: client.delete_dataset(dataset, delete_contents=True, not_found_ok=True))
    ledger = BigQueryLedger(f"{dataset}.completion_ledger", client)

    topic = _create_topic(project, stack)
    parts = common_components(
        config, clock=SystemClock(), store=store, breaker_store=breaker_store, ledger=ledger,
        table=MemoryTable(KEY, ORDER_BY),
    )
    parts.publish = _publisher(PubSubTriggerPublisher(topic))
    parts.close = stack.close
    return parts


def _create_topic(project: str, stack: contextlib.ExitStack) -> str:
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(project, "simulate-triggers")
    try:
        publisher.create_topic(name=topic)
    except Exception as exc:
        raise EmulatorError(f"creating the Pub/Sub topic {topic} failed: {exc}") from exc
    stack.callback(publisher.stop)
    return topic


def _publisher(publish: Callable[[Any], object]) -> Callable[[Any], None]:
    def send(event: Any) -> None:
        publish(event)

    return send
