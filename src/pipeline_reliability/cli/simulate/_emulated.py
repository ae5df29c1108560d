"""
``simulate --emulators``: the same game day on the Firestore, Pub/Sub and
BigQuery emulators, taken from ``*_EMULATOR_HOST`` or started here.

Time is real there (Firestore judges leases by its own clock), so the ticks
are short and the run sleeps between them.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..._clock import SystemClock
from ...errors import EmulatorError, ReliabilityError
from ...stores._probe import DEFAULT_PROBE_TIMEOUT
from ...stores.memory import MemoryStore
from ._components import KEY, ORDER_BY, Components, common_components
from ._config import SimulationConfig

__all__ = ["emulator_components", "emulators_running"]

_VARIABLES = ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST")
_BQ_PROJECT = "demo-test"
_COLUMNS = (
    ("game_date", "DATE"), ("processor", "STRING"), ("entity_id", "STRING"),
    ("value", "FLOAT64"), ("processed_at", "TIMESTAMP"), ("execution_id", "STRING"),
)


@contextlib.contextmanager
def emulators_running(connect_timeout: float = DEFAULT_PROBE_TIMEOUT) -> Iterator[None]:
    """
    Make sure the three emulators run and ``*_EMULATOR_HOST`` point at them.

    Emulators named by the environment are used as they are, once each
    answered within ``connect_timeout`` seconds; the others are started here
    and stopped (and the environment restored) on exit.

    Raises:
        EmulatorError: an emulator is missing and could not be started, or
            one named by the environment did not answer.
    """
    from ...testing.emulators import (
        Emulator,
        emulator_env,
        start_bigquery,
        start_firestore,
        start_pubsub,
    )

    saved = {name: os.environ.get(name) for name in (*_VARIABLES, "GOOGLE_CLOUD_PROJECT")}
    starters: dict[str, Callable[[], Emulator]] = {
        "firestore": start_firestore, "pubsub": start_pubsub,
        "bigquery": lambda: start_bigquery(project=_BQ_PROJECT),
    }
    missing = [name for name, var in zip(starters, _VARIABLES, strict=True) if not saved[var]]
    started: list[Emulator] = []
    try:
        # Started side by side: each takes one to two seconds to come up.
        with ThreadPoolExecutor(max(1, len(missing))) as pool:
            futures = {name: pool.submit(starters[name]) for name in missing}
            errors = []
            for name, future in futures.items():
                try:
                    started.append(future.result())
                    os.environ.update(emulator_env(**{name: started[-1]}, project=_BQ_PROJECT))
                except EmulatorError as exc:
                    errors.append(exc)
            if errors:
                raise errors[0]
        os.environ.setdefault("GOOGLE_CLOUD_PROJECT", _BQ_PROJECT)
        _probe(saved, connect_timeout)
        yield
    finally:
        for emulator in reversed(started):
            emulator.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _probe(given: Mapping[str, str | None], timeout: float) -> None:
    """Fail in seconds, not minutes, when an emulator named by the environment is not there."""
    from ...pubsub._admin import probe_topic
    from ...sinks._admin import probe_bigquery
    checks: dict[str, Callable[[], object]] = {
        "FIRESTORE_EMULATOR_HOST": lambda: _probe_firestore(timeout),
        "PUBSUB_EMULATOR_HOST": lambda: probe_topic(
            "probe", project=_BQ_PROJECT, timeout=timeout, must_exist=False),
        "BIGQUERY_EMULATOR_HOST": lambda: probe_bigquery(
            dataset="probe", project=_BQ_PROJECT, timeout=timeout),
    }
    for variable, check in checks.items():
        if not given.get(variable):
            continue  # started here, and ready: the launcher waited for it
        try:
            check()
        except ReliabilityError as exc:
            raise EmulatorError(
                f"the emulator at {variable}={os.environ[variable]} does not answer: {exc}"
            ) from exc


def _probe_firestore(timeout: float) -> None:
    from ...stores._probe import probe_store
    from ...stores.firestore import FirestoreStore

    store = FirestoreStore(project=_BQ_PROJECT)
    try:
        probe_store(store, timeout)
    finally:
        store.close()


def emulator_components(config: SimulationConfig) -> Components:
    """
    Components on the emulators: FirestoreStore (a fresh project), the
    BigQuery fallback ledger (a fresh dataset), and trigger events published
    to a fresh Pub/Sub topic.
    """
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(emulators_running(config.connect_timeout))
        return _build(config, stack)
    except BaseException:
        stack.close()
        raise


def _build(config: SimulationConfig, stack: contextlib.ExitStack) -> Components:
    from ...pubsub import PubSubTriggerPublisher
    from ...sinks._bigquery import make_client
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
    client.create_dataset(dataset)
    stack.callback(lambda: client.delete_dataset(dataset, delete_contents=True, not_found_ok=True))
    ledger = BigQueryLedger(f"{dataset}.completion_ledger", client)
    ledger.create_table()

    table = BigQueryTable(client, dataset)
    topic = _create_topic(project, stack)
    parts = common_components(
        config, clock=SystemClock(), store=store, breaker_store=breaker_store, ledger=ledger,
        table=table,
        # The instances are threads of this process, so an in-process store is
        # fleet-wide for them. The limit's own document on the Firestore emulator
        # is shown by tests/limits/test_concurrency_emulator.py; here it would add
        # the emulator's 2 s lock waits (EMULATORS.md) to every write of a 1 s tick
        # and turn the day's timing into a test of the emulator's lock manager.
        limit_store=MemoryStore(clock=SystemClock()),
    )
    parts.publish = _publisher(PubSubTriggerPublisher(topic))
    parts.close = stack.close
    parts.description = (
        f"project={project} on emulators firestore={os.environ['FIRESTORE_EMULATOR_HOST']} "
        f"pubsub={os.environ['PUBSUB_EMULATOR_HOST']} "
        f"bigquery={os.environ['BIGQUERY_EMULATOR_HOST']}"
    )
    return parts


def _create_topic(project: str, stack: contextlib.ExitStack) -> str:
    from ...pubsub._admin import create_topic

    topic, close = create_topic(project, "simulate-triggers")
    stack.callback(close)
    return topic


def _publisher(publish: Callable[[Any], object]) -> Callable[[Any], None]:
    def send(event: Any) -> None:
        publish(event)

    return send


@dataclass(frozen=True, slots=True)
class _Token:
    token: int


class BigQueryTable:
    """
    The simulation's output on the BigQuery emulator, written by the real
    :class:`~pipeline_reliability.sinks.writer.BigQueryWriter` (staging load +
    MERGE, fenced per table and date). One table per processor, so that the
    writer's fence scope (table, date) is the lock's (processor, date).
    """

    def __init__(self, client: Any, dataset: str) -> None:
        from ...sinks.bootstrap import create_table_from_schema
        from ...sinks.writer import BigQueryWriter

        self.client = client
        self.dataset = dataset
        create_table_from_schema(client, f"{dataset}.write_fences", "write_fences")
        self.writer = BigQueryWriter(client, fence_table=f"{dataset}.write_fences")
        self._lock = threading.Lock()
        self._tables: set[str] = set()

    def upsert(
        self,
        rows: Sequence[Mapping[str, Any]],
        *,
        fence: int | None = None,
        fence_key: Hashable = None,  # noqa: ARG002 - the writer scopes fences by (table, date)
    ) -> tuple[int, int]:
        """Merge ``rows`` into their processor's table, fenced by (table, date)."""
        if not rows:
            return 0, 0
        first = rows[0]
        table = self._table(str(first["processor"]))
        report = self.writer.upsert(
            table, rows, key=KEY, order_by=ORDER_BY, partition_date=str(first["game_date"]),
            fence=None if fence is None else _Token(fence),
        )
        return report.inserted, report.updated

    def rows(self) -> list[dict[str, Any]]:
        """Every row of every processor table (dates as ``YYYY-MM-DD``)."""
        out: list[dict[str, Any]] = []
        for table in sorted(self._tables):
            # Our own generated table names, never user input.
            query = f"SELECT * FROM `{table}`"  # noqa: S608
            for row in self.client.query(query).result():
                item = dict(row.items())
                item["game_date"] = item["game_date"].isoformat()
                out.append(item)
        return out

    def _table(self, processor: str) -> str:
        from ...sinks._admin import create_table

        name = f"{self.dataset}.out_{processor}"
        with self._lock:
            if name not in self._tables:
                create_table(self.client, name, _COLUMNS)
                self._tables.add(name)
        return name

