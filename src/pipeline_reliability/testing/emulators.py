"""
Start and stop the local Firestore, Pub/Sub and BigQuery emulators.

Used by the test suite's session fixtures and by ``pipeline-reliability
simulate --emulators``; users can call it from their own fixtures::

    from pipeline_reliability.testing.emulators import emulator_env, start_firestore

    with start_firestore() as fs:
        os.environ.update(emulator_env(firestore=fs))
        ...

Each emulator runs as ONE process that this module started (Firestore: the
JVM itself, not the ``gcloud`` wrapper, which would orphan java when killed),
on a free loopback port, logging to a file. It is stopped by its pid
(SIGTERM, then SIGKILL), and its process group is killed as well in case it
spawned children. Only the standard library is used here.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from ..errors import EmulatorError

__all__ = [
    "Emulator",
    "emulator_env",
    "find_sdk_root",
    "free_port",
    "reset_firestore",
    "start_bigquery",
    "start_firestore",
    "start_pubsub",
]

_FIRESTORE_JAR = Path("platform/cloud-firestore-emulator/cloud-firestore-emulator.jar")
_FIRESTORE_MAIN = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"
_PUBSUB_LAUNCHER = Path("platform/pubsub-emulator/bin/cloud-pubsub-emulator")
_LOOPBACK = "127.0.0.1"
# Direct connections only: an http_proxy in the environment must not see loopback polls.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_running: set[Emulator] = set()
_running_lock = threading.Lock()


@dataclass(frozen=True, eq=False)
class Emulator:
    """
    A running emulator process started by this module.

    Use it as a context manager, or call :meth:`stop`; processes still running
    when the interpreter exits are stopped then too.

    Attributes:
        name: ``"firestore"``, ``"pubsub"`` or ``"bigquery"``.
        host: ``"127.0.0.1:PORT"`` (what ``*_EMULATOR_HOST`` expects, minus the
            ``http://`` that BigQuery needs; see :attr:`url`).
        process: The process; its pid is :attr:`pid`.
        log_path: Where stdout and stderr go.
        project: The project the emulator was started for, if it takes one.
        extra_ports: Other ports it listens on (bqemulator's gRPC port).
    """

    name: str
    host: str
    process: subprocess.Popen[bytes]
    log_path: Path
    project: str | None = None
    extra_ports: tuple[int, ...] = field(default=())

    @property
    def pid(self) -> int:
        """The emulator's process id."""
        return self.process.pid

    @property
    def port(self) -> int:
        """The port in :attr:`host`."""
        return int(self.host.rsplit(":", 1)[1])

    @property
    def url(self) -> str:
        """``http://`` + :attr:`host`."""
        return f"http://{self.host}"

    def running(self) -> bool:
        """Whether the process is still alive."""
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the log (for error messages)."""
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 16_384))
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """
        Stop the process: SIGTERM, wait up to ``timeout`` seconds, then SIGKILL.

        Also kills the process group it leads, so nothing it spawned survives.
        Safe to call more than once.
        """
        with _running_lock:
            _running.discard(self)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # The process was started in its own session, so its pgid is its pid;
        # anything it forked is still in that group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def __enter__(self) -> Emulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def find_sdk_root(sdk_root: str | os.PathLike[str] | None = None) -> Path:
    """
    Locate the Google Cloud SDK: the argument, ``$CLOUDSDK_ROOT``, or the
    directory above the real path of ``gcloud`` on ``PATH``.

    Raises:
        EmulatorError: no SDK found.
    """
    if sdk_root is None:
        sdk_root = os.environ.get("CLOUDSDK_ROOT") or None
    if sdk_root is None:
        gcloud = shutil.which("gcloud")
        if gcloud is None:
            raise EmulatorError(
                "the Google Cloud SDK was not found: no gcloud on PATH and CLOUDSDK_ROOT unset"
            )
        # .../google-cloud-sdk/bin/gcloud (often behind a /usr/bin symlink)
        sdk_root = Path(os.path.realpath(gcloud)).parent.parent
    root = Path(sdk_root)
    if not root.is_dir():
        raise EmulatorError(f"the Google Cloud SDK root {root} does not exist")
    return root


def _java() -> str:
    java = shutil.which("java")
    if java is None and os.environ.get("JAVA_HOME"):
        candidate = Path(os.environ["JAVA_HOME"]) / "bin" / "java"
        java = str(candidate) if candidate.is_file() else None
    if java is None:
        raise EmulatorError("java was not found on PATH (the emulator needs Java 17 or newer)")
    return java


def start_firestore(
    *,
    sdk_root: str | os.PathLike[str] | None = None,
    log_dir: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
) -> Emulator:
    """
    Start the Cloud SDK's Firestore emulator on a free loopback port.

    The JVM is started directly (one process, stoppable by pid).

    Raises:
        EmulatorError: java or the emulator component is missing, or it did
            not become ready within ``timeout`` seconds.
    """
    jar = find_sdk_root(sdk_root) / _FIRESTORE_JAR
    if not jar.is_file():
        raise EmulatorError(
            f"the Firestore emulator is not installed ({jar} is missing); install the "
            "Cloud SDK component cloud-firestore-emulator"
        )
    port = free_port()
    cmd = [_java(), "-Duser.language=en", "-cp", str(jar), _FIRESTORE_MAIN, "start",
           f"--host={_LOOPBACK}", f"--port={port}"]  # fmt: skip
    return _launch("firestore", cmd, port=port, path="/", log_dir=log_dir, timeout=timeout)


def start_pubsub(
    *,
    sdk_root: str | os.PathLike[str] | None = None,
    log_dir: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
) -> Emulator:
    """
    Start the Cloud SDK's Pub/Sub emulator on a free loopback port.

    Its launcher script ends in ``exec java``, so the pid is the JVM's.

    Raises:
        EmulatorError: java or the emulator component is missing, the port
            could not be bound, or it was not ready within ``timeout`` seconds.
    """
    launcher = find_sdk_root(sdk_root) / _PUBSUB_LAUNCHER
    if not launcher.is_file():
        raise EmulatorError(
            f"the Pub/Sub emulator is not installed ({launcher} is missing); install the "
            "Cloud SDK component pubsub-emulator"
        )
    _java()
    port = free_port()
    cmd = [str(launcher), f"--host={_LOOPBACK}", f"--port={port}"]
    return _launch("pubsub", cmd, port=port, path="/", log_dir=log_dir, timeout=timeout)


def start_bigquery(
    binary: str | os.PathLike[str] | None = None,
    project: str = "demo-test",
    *,
    log_dir: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
) -> Emulator:
    """
    Start ``bqemulator`` (PyPI) on free loopback REST and gRPC ports.

    ``binary`` defaults to ``$BQEMULATOR_BIN``, then ``bqemulator`` on
    ``PATH``. Install it in its own virtualenv (its pytest plugin and pins
    clash with a test environment); see docs/how-to/testing.md.

    Raises:
        EmulatorError: no bqemulator found, or it did not become ready.
    """
    if binary is None:
        binary = os.environ.get("BQEMULATOR_BIN") or shutil.which("bqemulator")
    if binary is None:
        raise EmulatorError(
            "bqemulator was not found: pass binary=, set BQEMULATOR_BIN, or put it on PATH"
        )
    if not Path(binary).is_file():
        raise EmulatorError(f"bqemulator binary {binary} does not exist")
    rest, grpc = free_port(), free_port()
    cmd = [str(binary), "start", "--rest-host", _LOOPBACK, "--rest-port", str(rest),
           "--grpc-host", _LOOPBACK, "--grpc-port", str(grpc), "--project", project,
           "--log-level", "warning"]  # fmt: skip
    return _launch(
        "bigquery", cmd, port=rest, path="/healthz", log_dir=log_dir, timeout=timeout,
        project=project, extra_ports=(grpc,),
    )  # fmt: skip


def emulator_env(
    *,
    firestore: Emulator | str | None = None,
    pubsub: Emulator | str | None = None,
    bigquery: Emulator | str | None = None,
    project: str = "demo-test",
) -> dict[str, str]:
    """
    The environment variables that point Google client libraries at emulators.

    Pass :class:`Emulator` handles or ``host:port`` strings. BigQuery's
    variable gets the ``http://`` that google-cloud-bigquery needs.
    """
    env = {"GOOGLE_CLOUD_PROJECT": project}
    if firestore is not None:
        env["FIRESTORE_EMULATOR_HOST"] = _host(firestore)
    if pubsub is not None:
        env["PUBSUB_EMULATOR_HOST"] = _host(pubsub)
    if bigquery is not None:
        host = _host(bigquery)
        env["BIGQUERY_EMULATOR_HOST"] = host if "://" in host else f"http://{host}"
    return env


def reset_firestore(host: str, project: str, database: str = "(default)") -> None:
    """
    Delete every document of ``project`` in the Firestore emulator at ``host``.

    Other projects are untouched.

    Raises:
        EmulatorError: the emulator did not accept the request.
    """
    base = host if "://" in host else f"http://{host}"
    url = f"{base}/emulator/v1/projects/{project}/databases/{database}/documents"
    request = urllib.request.Request(url, method="DELETE")  # noqa: S310 - loopback http only
    try:
        with _OPENER.open(request, timeout=10) as response:
            response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise EmulatorError(f"resetting the Firestore emulator at {host} failed: {exc}") from exc


def _host(value: Emulator | str) -> str:
    return value.host if isinstance(value, Emulator) else value


def _launch(
    name: str,
    cmd: Sequence[str],
    *,
    port: int,
    path: str,
    log_dir: str | os.PathLike[str] | None,
    timeout: float,
    project: str | None = None,
    extra_ports: tuple[int, ...] = (),
) -> Emulator:
    folder = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="emulators-"))
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"{name}-{port}.log"
    # The child keeps its own copy of the descriptor; ours can close at once.
    with log_path.open("wb") as log:
        try:
            process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise EmulatorError(f"could not start the {name} emulator ({cmd[0]}): {exc}") from exc
    emulator = Emulator(name, f"{_LOOPBACK}:{port}", process, log_path, project, extra_ports)
    with _running_lock:
        _running.add(emulator)
    try:
        _wait_ready(emulator, path, timeout)
    except BaseException:
        emulator.stop(timeout=5)
        raise
    return emulator


def _wait_ready(emulator: Emulator, path: str, timeout: float) -> None:
    """Poll until the emulator answers 200 from our own pid, or fail with its log."""
    deadline = time.monotonic() + timeout
    while True:
        if not emulator.running():
            raise EmulatorError(
                f"the {emulator.name} emulator exited with code {emulator.process.returncode} "
                f"during start-up; log {emulator.log_path}:\n{emulator.log_tail()}"
            )
        # The Pub/Sub JVM keeps running after a failed bind, so read the log as well.
        tail = emulator.log_tail(200)
        if "BindException" in tail or "Address already in use" in tail:
            raise EmulatorError(
                f"the {emulator.name} emulator could not bind {emulator.host}; "
                f"log {emulator.log_path}:\n{emulator.log_tail()}"
            )
        if _answers(emulator.url + path) and _owns_port(emulator.pid, emulator.port):
            return
        if time.monotonic() >= deadline:
            raise EmulatorError(
                f"the {emulator.name} emulator was not ready at {emulator.url}{path} after "
                f"{timeout:.0f}s; log {emulator.log_path}:\n{emulator.log_tail()}"
            )
        time.sleep(0.2)


def _answers(url: str) -> bool:
    try:
        with _OPENER.open(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _owns_port(pid: int, port: int) -> bool:
    """
    Whether ``pid`` is the process listening on ``port``.

    Guards against a stale or foreign server that already held the port and
    would answer the readiness poll. Without ``ss`` (iproute2) this check is
    skipped.
    """
    ss = shutil.which("ss")
    if ss is None:
        return True
    try:
        out = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [ss, "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5,
            check=False,
        ).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return True
    return f"pid={pid}," in out


@atexit.register
def _stop_all() -> None:
    # Emulators a caller forgot to stop must not outlive the interpreter.
    with _running_lock:
        leftovers = list(_running)
    for emulator in leftovers:
        emulator.stop(timeout=5)
