"""
The process side of the emulator harness: launch one emulator process, wait
until it answers from its own pid, and stop it (and its process group).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pathlib
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

__all__ = ["LOOPBACK", "OPENER", "Emulator", "free_port", "launch"]

LOOPBACK = "127.0.0.1"
# Direct connections only: an http_proxy in the environment must not see loopback polls.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
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
    log_path: pathlib.Path  # spelled out: the docs resolve it from another module
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
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def launch(
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
    emulator = Emulator(name, f"{LOOPBACK}:{port}", process, log_path, project, extra_ports)
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
        with OPENER.open(url, timeout=1) as response:
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

