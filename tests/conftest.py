"""
Shared fixtures: hypothesis profiles, a fake clock, stores, emulators, telemetry.

Emulators start lazily on first use (a run that needs only memory starts no
Java), once per session, on free loopback ports; ``*_EMULATOR_HOST`` variables
that are already set are reused instead. In CI (``CI=true``) an emulator that
cannot start fails the tests that need it; locally they skip with the reason.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
from hypothesis import HealthCheck, settings

from pipeline_reliability import MemoryStore, StateStore
from pipeline_reliability.errors import EmulatorError
from pipeline_reliability.testing import FakeClock
from pipeline_reliability.testing.emulators import (
    Emulator,
    start_bigquery,
    start_firestore,
    start_pubsub,
)
from store_backends import SYNC_BACKENDS, make_store

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from pipeline_reliability.stores.firestore import FirestoreStore

settings.register_profile(
    "dev", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "nightly", deadline=None, max_examples=2000, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
)

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
BIGQUERY_PROJECT = "demo-test"


def unique_name(prefix: str) -> str:
    """A fresh lowercase name (valid as a project, topic, subscription or dataset id)."""
    return f"{prefix}{uuid.uuid4().hex[:16]}"


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that moves only when the test says so."""
    return FakeClock()


@pytest.fixture
def black_hole() -> Iterator[str]:
    """``host:port`` of a listener on loopback that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.1)  # so that the accepting thread sees ``stop`` soon
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    server.close()
    for conn in accepted:
        conn.close()


@pytest.fixture
def memory_store(fake_clock: FakeClock) -> MemoryStore:
    """A fresh MemoryStore on the fake clock."""
    return MemoryStore(clock=fake_clock)


# --- emulators ---------------------------------------------------------------


def _emulator_missing(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"emulator unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"EMULATOR UNAVAILABLE, test skipped: {reason}")


@pytest.fixture(scope="session")
def emulator_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the emulators this session starts write their logs."""
    return tmp_path_factory.mktemp("emulators")


def _session_emulator(
    variable: str, start: Callable[[], Emulator], value: Callable[[Emulator], str]
) -> Iterator[str]:
    existing = os.environ.get(variable)
    if existing:
        yield existing
        return
    try:
        emulator = start()
    except EmulatorError as exc:
        _emulator_missing(str(exc))
    os.environ[variable] = value(emulator)
    try:
        yield os.environ[variable]
    finally:
        os.environ.pop(variable, None)
        emulator.stop()


@pytest.fixture(scope="session")
def firestore_emulator(emulator_log_dir: Path) -> Iterator[str]:
    """``host:port`` of a Firestore emulator; sets ``FIRESTORE_EMULATOR_HOST``."""
    yield from _session_emulator(
        "FIRESTORE_EMULATOR_HOST",
        lambda: start_firestore(log_dir=emulator_log_dir),
        lambda emu: emu.host,
    )


@pytest.fixture(scope="session")
def pubsub_emulator(emulator_log_dir: Path) -> Iterator[str]:
    """``host:port`` of a Pub/Sub emulator; sets ``PUBSUB_EMULATOR_HOST``."""
    yield from _session_emulator(
        "PUBSUB_EMULATOR_HOST",
        lambda: start_pubsub(log_dir=emulator_log_dir),
        lambda emu: emu.host,
    )


def _bqemulator_binary() -> str | None:
    # nox sets BQEMULATOR_BIN; a developer who ran nox once has the venv it made.
    prepared = ROOT / ".nox" / "_bqemulator" / "bin" / "bqemulator"
    return os.environ.get("BQEMULATOR_BIN") or (str(prepared) if prepared.is_file() else None)


@pytest.fixture(scope="session")
def bigquery_emulator(emulator_log_dir: Path) -> Iterator[str]:
    """``http://host:port`` of a BigQuery emulator; sets ``BIGQUERY_EMULATOR_HOST``."""
    yield from _session_emulator(
        "BIGQUERY_EMULATOR_HOST",
        lambda: start_bigquery(_bqemulator_binary(), BIGQUERY_PROJECT, log_dir=emulator_log_dir),
        lambda emu: emu.url,
    )


@pytest.fixture
def firestore_project(firestore_emulator: str) -> str:
    """A project id no other test uses: each test sees an empty Firestore."""
    return unique_name("test-")


@pytest.fixture
def firestore_store(firestore_project: str) -> Iterator[FirestoreStore]:
    """A fresh FirestoreStore on the emulator, isolated by a unique project id."""
    from pipeline_reliability.stores.firestore import FirestoreStore

    store = FirestoreStore(project=firestore_project)
    yield store
    store.close()


@pytest.fixture
def pubsub_project(pubsub_emulator: str) -> str:
    """A project id no other test uses (topics and subscriptions are per project)."""
    return unique_name("test-")


@pytest.fixture
def bigquery_client(bigquery_emulator: str) -> Iterator[Any]:
    """A ``google.cloud.bigquery.Client`` on the emulator (anonymous credentials)."""
    from pipeline_reliability.sinks._bigquery import make_client

    client = make_client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", BIGQUERY_PROJECT))
    yield client
    client.close()


@pytest.fixture
def bigquery_dataset(bigquery_client: Any) -> Iterator[str]:
    """A fresh dataset id in the client's project, deleted (with its tables) after the test."""
    dataset = unique_name("ds_")
    bigquery_client.create_dataset(dataset)
    yield dataset
    bigquery_client.delete_dataset(dataset, delete_contents=True, not_found_ok=True)


# --- the store contract: one fixture, every backend ----------------------------


@pytest.fixture
def store_options() -> dict[str, Any]:
    """Constructor options for ``store``; override in a module or class to change them."""
    return {}


@pytest.fixture(params=SYNC_BACKENDS)
def store(
    request: pytest.FixtureRequest, fake_clock: FakeClock, store_options: dict[str, Any]
) -> Iterator[StateStore]:
    """Each backend in turn: a FakeClock-backed MemoryStore, then a FirestoreStore."""
    yield from make_store(request, request.param, fake_clock, store_options)


# --- telemetry ---------------------------------------------------------------


@pytest.fixture(scope="session")
def _tracing() -> InMemorySpanExporter:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    current = trace.get_tracer_provider()
    if current is not provider:
        # A provider was installed earlier in this process; listen to it instead.
        assert isinstance(current, TracerProvider), f"cannot attach to {current!r}"
        current.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def span_exporter(_tracing: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """Finished spans of this test (an OTel SDK in-memory exporter on the global provider)."""
    _tracing.clear()
    yield _tracing
    _tracing.clear()


@pytest.fixture(scope="session")
def metric_reader() -> InMemoryMetricReader:
    """An OTel SDK in-memory metric reader on the global meter provider (cumulative)."""
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(provider)
    assert metrics.get_meter_provider() is provider, "another MeterProvider was installed first"
    return reader
