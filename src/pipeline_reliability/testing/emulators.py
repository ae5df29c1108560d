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
spawned children (the process side lives in ``_process``). Only the
standard library is used here.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import EmulatorError
from ._process import LOOPBACK as _LOOPBACK
from ._process import OPENER as _OPENER
from ._process import Emulator, free_port
from ._process import launch as _launch

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

# Documented (and shown in reprs) as part of this public module.
Emulator.__module__ = free_port.__module__ = __name__

_FIRESTORE_JAR = Path("platform/cloud-firestore-emulator/cloud-firestore-emulator.jar")
_FIRESTORE_MAIN = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"
_PUBSUB_LAUNCHER = Path("platform/pubsub-emulator/bin/cloud-pubsub-emulator")


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
