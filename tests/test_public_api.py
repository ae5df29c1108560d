"""
Import hygiene and the shape of the public API (DESIGN F10).

``import pipeline_reliability`` must load no Google library, read no
environment variable, open no connection and start no thread; the public
names are one sorted, complete ``__all__``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import types
from typing import Any

import pytest

import pipeline_reliability

SUBPACKAGES = [
    "breaker",
    "completion",
    "dedup",
    "limits",
    "lock",
    "ops",
    "processor",
    "pubsub",
    "retry",
    "sinks",
    "stores",
    "testing",
]
PRESENT = [
    name
    for name in SUBPACKAGES
    if importlib.util.find_spec(f"pipeline_reliability.{name}") is not None
]

# Runs in a fresh interpreter. The package's runtime dependencies are imported
# first: what they do at import is theirs. Then os.environ is replaced by a
# mapping that records every access (os.getenv goes through it too), sockets
# and threads are watched, and the package is imported.
PROBE = textwrap.dedent(
    """
    import json, os, socket, sys, threading
    from collections.abc import MutableMapping

    import opentelemetry.metrics, opentelemetry.trace, tenacity  # noqa: F401

    class Recorder(MutableMapping):
        def __init__(self, inner):
            self.inner, self.reads = inner, []
        def __getitem__(self, key):
            self.reads.append(key)
            return self.inner[key]
        def __setitem__(self, key, value):
            self.reads.append(key)
            self.inner[key] = value
        def __delitem__(self, key):
            self.reads.append(key)
            del self.inner[key]
        def __iter__(self):
            self.reads.append("<iteration>")
            return iter(self.inner)
        def __len__(self):
            return len(self.inner)
        def __contains__(self, key):
            self.reads.append(key)
            return key in self.inner

    recorder = Recorder(os.environ)
    os.environ = recorder
    sockets = []
    real_socket = socket.socket
    class Socket(real_socket):
        def __init__(self, *args, **kwargs):
            sockets.append(args)
            super().__init__(*args, **kwargs)
    socket.socket = Socket
    threads = threading.active_count()

    for module in MODULES:
        __import__(module)

    print(json.dumps({
        "google": sorted(m for m in sys.modules if m == "google" or m.startswith("google.")),
        "grpc": sorted(m for m in sys.modules if m == "grpc" or m.startswith("grpc.")),
        "env": recorder.reads,
        "sockets": len(sockets),
        "threads": threading.active_count() - threads,
        "heavy": sorted(m for m in ("asyncio", "importlib.metadata") if m in sys.modules),
    }))
    """
)


def _probe(modules: list[str]) -> dict[str, Any]:
    code = f"MODULES = {modules!r}\n{PROBE}"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def test_import_loads_no_google_module_reads_no_env_and_connects_nowhere() -> None:
    """`import pipeline_reliability` loads no google.* or grpc module, reads no env variable."""
    result = _probe(["pipeline_reliability"])

    expected = {"google": [], "grpc": [], "env": [], "sockets": 0, "threads": 0, "heavy": []}
    assert result == expected


def test_importing_every_public_subpackage_stays_lazy() -> None:
    """Importing each public subpackage also loads no Google library and reads no env variable."""
    result = _probe([f"pipeline_reliability.{name}" for name in PRESENT])

    expected = {"google": [], "grpc": [], "env": [], "sockets": 0, "threads": 0}
    assert {**expected, "heavy": result["heavy"]} == result


def test_all_is_sorted_public_and_resolvable() -> None:
    """The top-level __all__ is sorted, has no private names, and every name resolves."""
    names = pipeline_reliability.__all__

    assert names == sorted(names)
    assert len(names) == len(set(names))
    assert [n for n in names if n.startswith("_")] == []
    for name in names:
        assert getattr(pipeline_reliability, name) is not None, name


def test_version_is_available() -> None:
    """__version__ is a non-empty string and is listed by dir()."""
    assert isinstance(pipeline_reliability.__version__, str)
    assert pipeline_reliability.__version__
    assert "__version__" in dir(pipeline_reliability)


def test_unknown_attribute_raises_attribute_error() -> None:
    """A misspelt name fails like any module attribute."""
    with pytest.raises(AttributeError):
        _ = pipeline_reliability.NoSuchName


@pytest.mark.parametrize("name", PRESENT)
def test_subpackage_names_are_all_exported_at_top_level(name: str) -> None:
    """Each public subpackage has a sorted __all__, and all of it is in the top-level __all__."""
    module: types.ModuleType = importlib.import_module(f"pipeline_reliability.{name}")
    exported: list[str] = list(getattr(module, "__all__", []))

    assert exported == sorted(exported)
    assert [n for n in exported if n.startswith("_")] == []
    missing = sorted(set(exported) - set(pipeline_reliability.__all__))
    assert missing == [], f"pipeline_reliability.{name} exports names missing at top level"
    for item in exported:
        assert getattr(module, item) is getattr(pipeline_reliability, item), item


F10_PROBE = """
import json, sys
from datetime import UTC, datetime
for name in ("google.cloud.firestore", "google.cloud.bigquery", "google.cloud.pubsub_v1"):
    sys.modules[name] = None  # as if no extra were installed
import pipeline_reliability as pr

out = {}
store = pr.MemoryStore()
tracker = pr.CompletionTracker(store, [pr.PhaseSpec("phase3", expected=["a", "b"])])
out["counted"] = tracker.record_completion("phase3", "2026-01-31", "a", execution_id="r1").counted
with pr.DateLock(store, "phase3", "2026-01-31", owner="me") as lease:
    out["fenced"] = lease.fenced
out["breaker"] = pr.CircuitBreaker("downstream", store).call(lambda: "ok")
now = datetime.now(UTC)
event = pr.TriggerEvent("phase3", "2026-01-31", "phase3:2026-01-31", "all_complete",
                        frozenset("ab"), frozenset(), None, now, 1, None)
row = pr.LedgerRow("phase3", "2026-01-31", "a", "r1", "success", now, now, False)
uses = {
    "firestore": lambda: pr.FirestoreStore(project="demo-test").get("c", "k"),
    "bigquery": lambda: pr.BigQueryLedger("ds.table").append(row),
    "pubsub": lambda: pr.PubSubTriggerPublisher("projects/demo-test/topics/phase4").publish(event),
}
for extra, use in uses.items():
    try:
        use()
        out[extra] = "no error"
    except pr.MissingDependencyError as exc:
        out[extra] = exc.extra
print(json.dumps(out))
"""


def test_f10_works_without_environment_or_extras_and_names_the_missing_extra() -> None:
    """With an empty environment and no Google extras, the core works and each cloud use
    fails where it is made, with MissingDependencyError naming the extra to install."""
    out = subprocess.run(
        [sys.executable, "-c", F10_PROBE],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ.get("PATH", "")},
    ).stdout

    expected = {
        "counted": True,
        "fenced": True,
        "breaker": "ok",
        "firestore": "firestore",
        "bigquery": "bigquery",
        "pubsub": "pubsub",
    }
    assert expected == json.loads(out.strip().splitlines()[-1])
