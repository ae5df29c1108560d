"""
The emulator harness: finding the tools, start-up failures, readiness, stopping.

Start-up logic is exercised with a tiny stand-in "emulator" (a Python HTTP
server) so that every failure mode is quick and certain; the real emulators
are started by the session fixtures and covered by the smoke tests.
"""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline_reliability import EmulatorError
from pipeline_reliability.testing import _process
from pipeline_reliability.testing.emulators import (
    Emulator,
    emulator_env,
    find_sdk_root,
    free_port,
    reset_firestore,
    start_bigquery,
    start_firestore,
    start_pubsub,
)

StartFake = Callable[..., Emulator]

FAKE_EMULATOR = """
import http.server, signal, subprocess, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
if mode == "exit":
    print("fatal: cannot start", flush=True)
    sys.exit(3)
if mode == "bind":
    print("java.net.BindException: Address already in use", flush=True)
    time.sleep(120)
if mode in ("silent", "squatter"):
    time.sleep(120)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "parent":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    print(f"child={child.pid}", flush=True)

class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"Ok")
    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", port), Ok).serve_forever()
"""


@pytest.fixture
def fake_emulator(tmp_path: Path) -> Iterator[StartFake]:
    """Start the stand-in emulator in a given mode; stops whatever it started."""
    script = tmp_path / "fake_emulator.py"
    script.write_text(FAKE_EMULATOR)
    started: list[Emulator] = []

    def start(mode: str, *, port: int | None = None, timeout: float = 20.0) -> Emulator:
        port = port or free_port()
        emulator = _process.launch(
            f"fake-{mode}",
            [sys.executable, str(script), str(port), mode],
            port=port,
            path="/",
            log_dir=tmp_path,
            timeout=timeout,
        )
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop(timeout=2)


def _gone(pid: int, within: float = 10.0) -> bool:
    """Whether ``pid`` has exited (or is a zombie) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in {"Z", "X"}:
            return True
        time.sleep(0.05)  # a real process is exiting; nothing to fake here
    return False


def test_free_port_can_be_bound() -> None:
    """free_port returns a loopback port nobody listens on."""
    import socket

    port = free_port()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    assert 1024 <= port <= 65535


def test_ready_emulator_is_usable_and_stops_by_pid(fake_emulator: StartFake) -> None:
    """A server that answers from its own pid is ready; stop() ends it, idempotently."""
    emulator = fake_emulator("serve")

    assert emulator.running()
    assert emulator.url == f"http://127.0.0.1:{emulator.port}"
    emulator.stop()
    emulator.stop()
    assert not emulator.running()


def test_context_manager_stops_the_emulator(fake_emulator: StartFake) -> None:
    """Leaving the with block stops the process."""
    with fake_emulator("serve") as emulator:
        pid = emulator.pid

    assert _gone(pid)


def test_stop_kills_the_process_group(fake_emulator: StartFake) -> None:
    """Processes the emulator spawned are stopped with it."""
    emulator = fake_emulator("parent")
    child = int(emulator.log_path.read_text().split("child=")[1].split()[0])

    emulator.stop()

    assert _gone(child)


def test_stop_escalates_to_sigkill(fake_emulator: StartFake) -> None:
    """A process that ignores SIGTERM is killed after the grace period."""
    emulator = fake_emulator("stubborn")
    started = time.monotonic()

    emulator.stop(timeout=0.5)

    assert emulator.process.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 5


def test_exit_during_start_up_fails_fast_with_the_log(fake_emulator: StartFake) -> None:
    """A process that dies while starting gives EmulatorError with its exit code and log."""
    with pytest.raises(EmulatorError, match=r"exited with code 3[\s\S]*fatal: cannot start"):
        fake_emulator("exit")


def test_bind_exception_in_the_log_fails_fast(fake_emulator: StartFake) -> None:
    """A JVM that logs BindException but keeps running is reported, not waited for."""
    started = time.monotonic()

    with pytest.raises(EmulatorError, match="could not bind"):
        fake_emulator("bind", timeout=30)

    assert time.monotonic() - started < 15


def test_not_ready_within_the_timeout(fake_emulator: StartFake) -> None:
    """A process that never serves gives EmulatorError after the timeout and is stopped."""
    with pytest.raises(EmulatorError, match="not ready"):
        fake_emulator("silent", timeout=1.0)


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_a_foreign_server_on_the_port_is_not_taken_for_ours(fake_emulator: StartFake) -> None:
    """If another process answers on the port, our process is not ready until it owns it."""

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    squatter = http.server.HTTPServer(("127.0.0.1", 0), Ok)
    thread = threading.Thread(target=squatter.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(EmulatorError, match="not ready"):
            fake_emulator("squatter", port=squatter.server_port, timeout=1.5)
    finally:
        squatter.shutdown()
        squatter.server_close()


def test_sdk_root_comes_from_argument_environment_or_gcloud(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK root is the argument, else $CLOUDSDK_ROOT, else two levels above real gcloud."""
    sdk = tmp_path / "google-cloud-sdk"
    (sdk / "bin").mkdir(parents=True)
    gcloud = sdk / "bin" / "gcloud"
    gcloud.write_text("#!/bin/sh\n")
    gcloud.chmod(0o755)
    links = tmp_path / "usr-bin"
    links.mkdir()
    (links / "gcloud").symlink_to(gcloud)

    assert find_sdk_root(sdk) == sdk
    monkeypatch.setenv("CLOUDSDK_ROOT", str(sdk))
    assert find_sdk_root() == sdk
    monkeypatch.delenv("CLOUDSDK_ROOT")
    monkeypatch.setenv("PATH", str(links))
    assert find_sdk_root() == sdk


def test_missing_sdk_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No gcloud and no CLOUDSDK_ROOT, or a root that does not exist, is an EmulatorError."""
    monkeypatch.delenv("CLOUDSDK_ROOT", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(EmulatorError, match="no gcloud on PATH"):
        find_sdk_root()
    with pytest.raises(EmulatorError, match="does not exist"):
        find_sdk_root(tmp_path / "nowhere")


def test_missing_emulator_components_are_reported(tmp_path: Path) -> None:
    """An SDK without the emulator components says which file is missing."""
    with pytest.raises(EmulatorError, match=r"cloud-firestore-emulator\.jar is missing"):
        start_firestore(sdk_root=tmp_path)
    with pytest.raises(EmulatorError, match="cloud-pubsub-emulator is missing"):
        start_pubsub(sdk_root=tmp_path)


def test_missing_java_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the components present but no java, the error says so."""
    jar = tmp_path / "platform" / "cloud-firestore-emulator" / "cloud-firestore-emulator.jar"
    jar.parent.mkdir(parents=True)
    jar.write_bytes(b"")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)

    with pytest.raises(EmulatorError, match="java was not found"):
        start_firestore(sdk_root=tmp_path)


def test_missing_bqemulator_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No binary argument, no BQEMULATOR_BIN and none on PATH is an EmulatorError."""
    monkeypatch.delenv("BQEMULATOR_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(EmulatorError, match="bqemulator was not found"):
        start_bigquery()
    with pytest.raises(EmulatorError, match="does not exist"):
        start_bigquery(tmp_path / "bqemulator")


def test_emulator_env_points_clients_at_the_emulators() -> None:
    """The variables carry host:port, with http:// added for BigQuery only."""
    env = emulator_env(
        firestore="127.0.0.1:1", pubsub="127.0.0.1:2", bigquery="127.0.0.1:3", project="p"
    )

    assert env == {
        "GOOGLE_CLOUD_PROJECT": "p",
        "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1",
        "PUBSUB_EMULATOR_HOST": "127.0.0.1:2",
        "BIGQUERY_EMULATOR_HOST": "http://127.0.0.1:3",
    }
    assert emulator_env() == {"GOOGLE_CLOUD_PROJECT": "demo-test"}


def test_reset_of_an_unreachable_emulator_is_reported() -> None:
    """reset_firestore against a closed port raises EmulatorError."""
    with pytest.raises(EmulatorError, match="resetting the Firestore emulator"):
        reset_firestore(f"127.0.0.1:{free_port()}", "p")


@pytest.mark.firestore
def test_reset_firestore_clears_only_that_project(firestore_emulator: str) -> None:
    """The REST reset empties one project's documents and leaves other projects alone."""
    from google.cloud import firestore

    clients: dict[str, Any] = {p: firestore.Client(project=p) for p in ("reset-a", "reset-b")}
    for client in clients.values():
        client.collection("c").document("d").set({"a": 1})

    reset_firestore(os.environ["FIRESTORE_EMULATOR_HOST"], "reset-a")

    assert not clients["reset-a"].collection("c").document("d").get().exists
    assert clients["reset-b"].collection("c").document("d").get().exists
    for client in clients.values():
        client.close()
