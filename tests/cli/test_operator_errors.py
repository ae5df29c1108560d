"""
The operator commands as on-call staff meet them (issue 10, items 10-12, 14):
one line per error, the project on stderr, a fast reachability check, and
clear answers about names and dates never seen. On a MemoryStore or a dead
or black-holed address, so no emulator is needed.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from cli_helpers import Cli, Run

from pipeline_reliability import MemoryStore
from pipeline_reliability.cli import _common, _tracker, main
from pipeline_reliability.cli._phases import PRESETS
from pipeline_reliability.completion import CompletionTracker, PhaseSpec
from pipeline_reliability.errors import (
    ConfigurationError,
    EmulatorError,
    InvalidInputError,
    PublishFailedError,
    StoreUnavailableError,
)
from pipeline_reliability.stores._protocol import Snapshot
from pipeline_reliability.testing import FakeClock

DATE = "2026-01-31"
PROJECT = "memory-project"
BANNER = "pipeline-reliability: project="


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch, fake_clock: FakeClock) -> MemoryStore:
    """The store every command of the test opens, in project ``memory-project``."""
    shared = MemoryStore(clock=fake_clock)
    monkeypatch.setattr(_common, "open_store", lambda args: shared)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    monkeypatch.delenv("GCLOUD_PROJECT", raising=False)
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    return shared


def _errors(run: Run) -> list[str]:
    """stderr without the banner lines that say what the command acts on."""
    return [line for line in run.err.splitlines() if not line.startswith(BANNER)]


def _subprocess(*argv: str, env: dict[str, str], timeout: float = 60) -> tuple[Any, float]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline_reliability.cli", *argv],
        capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )
    return proc, time.monotonic() - started


def _env(**values: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items()
            if not k.endswith("_EMULATOR_HOST") and k not in {"GOOGLE_CLOUD_PROJECT",
                                                              "GCLOUD_PROJECT"}}
    return {**keep, "PYTHONPATH": os.pathsep.join(sys.path), **values}


# -- item 10: one line per error, documented exit codes --------------------------------------


def test_item10_library_failure_logs_carry_no_traceback(
    cli: Cli, store: MemoryStore, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep whose publish fails: an ERROR row, log records of one line; --debug: tracebacks."""
    tracker = CompletionTracker(store, [PhaseSpec("phase3", PRESETS["phase3"])], clock=fake_clock)
    for name in PRESETS["phase3"]:
        result = tracker.record_completion("phase3", DATE, name, execution_id=f"{name}-1")
    assert result.trigger is not None
    tracker.release_trigger(result.trigger, "publish failed")

    def failing(event: object) -> None:
        raise PublishFailedError("topic is gone")

    monkeypatch.setattr(_tracker, "_publisher", lambda args: failing)

    run = cli("sweep", "phase3", DATE, "--topic", "t")
    debug = cli("sweep", "phase3", DATE, "--topic", "t", "--debug")

    assert run.status == 1
    assert "ERROR: " in run.out
    assert "Traceback" not in run.err, run.err
    # At most the library's own one-line records: no traceback, no continuation lines.
    assert all(line.startswith(("WARNING pipeline_reliability.", "ERROR pipeline_reliability."))
               for line in _errors(run)), run.err
    assert "Traceback" in debug.err


def test_item10_unexpected_error_is_one_line_and_debug_adds_the_traceback(
    cli: Cli, store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug (a raw Python error) is one line and exit 1; --debug prints its traceback."""

    def broken(*args: object) -> Snapshot:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(store, "get", broken)

    run = cli("lock", "show", "writer", DATE)
    debug = cli("lock", "show", "writer", DATE, "--debug")

    assert run.status == 1
    assert _errors(run) == [
        "pipeline-reliability: error: ZeroDivisionError: division by zero "
        "(unexpected: run again with --debug for the traceback)"
    ]
    assert debug.status == 1
    assert "Traceback (most recent call last)" in debug.err


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (InvalidInputError("bad"), 2),
        (ConfigurationError("bad"), 2),
        (EmulatorError("no java"), 2),
        (StoreUnavailableError("down"), 1),
        (PublishFailedError("down"), 1),
        (RuntimeError("bug"), 1),
    ],
)
def test_item10_exit_status_of_each_error_class(exc: Exception, status: int) -> None:
    """Bad input or environment is 2 (nothing done); a failure while running is 1."""
    from pipeline_reliability.cli import exit_status

    assert exit_status(exc) == status


# -- item 11: the project, on stderr, and never a default -------------------------------------


def test_item11_no_project_is_refused_and_nothing_written(
    cli: Cli, store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --project or GOOGLE_CLOUD_PROJECT, breaker open refuses: exit 2, one line."""
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")

    run = cli("breaker", "open", "stats-api")

    assert run.status == 2
    assert run.err.splitlines() == [
        "pipeline-reliability: error: no Google Cloud project given: pass --project or set "
        "GOOGLE_CLOUD_PROJECT"
    ]
    assert store.stats.writes == 0


def test_item11_the_project_and_database_are_printed_on_stderr(
    cli: Cli, store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command that touches the store names its project, database and emulator first."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080")

    run = cli("lock", "show", "writer", DATE, "--database", "ops", "--project", "p1")
    env_only = cli("breaker", "show", "stats-api")

    assert run.err.splitlines()[0] == (
        "pipeline-reliability: project=p1 database=ops [emulator 127.0.0.1:8080]"
    )
    assert env_only.err.splitlines()[0] == (
        f"pipeline-reliability: project={PROJECT} database=(default) [emulator 127.0.0.1:8080]"
    )


def test_item11_gcloud_project_is_honoured(
    cli: Cli, store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GCLOUD_PROJECT names the project too."""
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    monkeypatch.setenv("GCLOUD_PROJECT", "legacy")

    run = cli("lock", "show", "writer", DATE)

    assert run.status == 0
    assert "project=legacy " in run.err


# -- item 12: a reachability check with a short deadline --------------------------------------


def _dead_port() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"127.0.0.1:{port}"


@pytest.mark.parametrize("argv", [["status", "phase3", DATE], ["breaker", "open", "stats-api"],
                                  ["lock", "show", "writer", DATE]])
def test_item12_black_holed_store_fails_within_the_deadline(
    black_hole: str, argv: list[str]
) -> None:
    """A Firestore that accepts and never answers: exit 2 within the deadline, one line."""
    env = _env(FIRESTORE_EMULATOR_HOST=black_hole, GOOGLE_CLOUD_PROJECT="p")

    proc, elapsed = _subprocess("--connect-timeout", "1.5", *argv, env=env)

    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    banner, error = proc.stderr.splitlines()
    assert banner == f"pipeline-reliability: project=p database=(default) [emulator {black_hole}]"
    assert error.startswith("pipeline-reliability: error: Firestore (project p): ")
    assert "within 1.5 s" in error
    # Interpreter start-up and imports take about a second; the wait itself 1.5 s.
    assert elapsed < 1.5 + 5


def test_item12_dead_port_fails_at_once_with_one_line() -> None:
    """Nothing listening: exit 2 at once (not after 30 s), the cause in one line."""
    env = _env(FIRESTORE_EMULATOR_HOST=_dead_port(), GOOGLE_CLOUD_PROJECT="p")

    proc, elapsed = _subprocess("status", "phase3", DATE, env=env)

    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(BANNER)
    assert "Connection refused" in lines[1] or "failed to connect" in lines[1]
    assert elapsed < 5 + 5


def test_item12_hung_store_is_abandoned_at_the_deadline(
    cli: Cli, store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the store does, the check gives up at --connect-timeout: exit 2, nothing done."""
    release = threading.Event()

    def hangs(*args: object) -> Snapshot:
        release.wait(10)
        raise StoreUnavailableError("gave up")

    monkeypatch.setattr(store, "get", hangs)
    started = time.monotonic()

    run = cli("--connect-timeout", "0.3", "breaker", "open", "stats-api")

    elapsed = time.monotonic() - started
    release.set()
    assert run.status == 2
    assert "did not answer" in run.err or "hangs" in run.err
    assert len(_errors(run)) == 1
    assert elapsed < 0.3 + 2
    assert store.stats.writes == 0


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan"])
def test_connect_timeout_must_be_positive(cli: Cli, store: MemoryStore, value: str) -> None:
    """A bad --connect-timeout is one line and exit 2."""
    run = cli("lock", "show", "writer", DATE, "--connect-timeout", value)

    assert run.status == 2
    assert "--connect-timeout" in run.err
    assert len(_errors(run)) == 1


# -- item 14: names never seen, --expected, broken pipes, impossible dates --------------------


def test_item14_breaker_never_seen_says_so(cli: Cli, store: MemoryStore) -> None:
    """breaker show of an unknown name says nothing is recorded, not 'closed, generation 0'."""
    run = cli("breaker", "show", "stats-apj")
    data = json.loads(cli("breaker", "show", "stats-apj", "--json").out)

    assert run.status == 0
    assert "no state recorded" in run.out
    assert "generation 0" not in run.out
    assert data["recorded"] is False


def test_item14_breaker_show_json_has_no_previous_state(cli: Cli, store: MemoryStore) -> None:
    """show changes nothing, so it has no previous state; open reports the one it replaced."""
    opened = json.loads(cli("breaker", "open", "stats-api", "--json").out)
    shown = json.loads(cli("breaker", "show", "stats-api", "--json").out)

    assert opened["previous_state"] == "closed"
    assert opened["state"] == "open"
    assert shown["previous_state"] is None
    assert shown["recorded"] is True


def test_item14_lock_never_taken_says_so(cli: Cli, store: MemoryStore) -> None:
    """lock show of a lock never taken says so, not 'free'."""
    run = cli("lock", "show", "writer", DATE)
    data = json.loads(cli("lock", "show", "writer", DATE, "--json").out)

    assert "never taken" in run.out
    assert "free" not in run.out
    assert data["recorded"] is False


@pytest.mark.parametrize("expected", ["", "a,,b", "a,", " , "])
def test_item14_empty_expected_names_are_refused(
    cli: Cli, store: MemoryStore, expected: str
) -> None:
    """--expected '' and --expected a,,b are errors (exit 2), not the preset or {a, b}."""
    run = cli("status", "phase3", DATE, "--expected", expected)

    assert run.status == 2
    assert len(run.err.splitlines()) == 1  # refused before the store: no banner either
    assert "--expected" in run.err
    assert store.stats.reads == 0


@pytest.mark.parametrize("text", ["2026-02-30", "2025-02-29", "2026-04-31", "2026-13-01"])
def test_item14_impossible_date_says_no_such_date(
    cli: Cli, store: MemoryStore, text: str
) -> None:
    """A well-formed but impossible date is 'no such date', not a format error."""
    run = cli("lock", "show", "writer", text)

    assert run.status == 2
    assert run.err.strip() == f"pipeline-reliability: error: invalid date {text!r}: no such date"


def test_malformed_date_asks_for_the_format(cli: Cli, store: MemoryStore) -> None:
    """A date in another form still says which form is expected."""
    run = cli("lock", "show", "writer", "31-01-2026")

    assert "expected YYYY-MM-DD" in run.err


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_item14_closed_stdout_exits_quietly(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`... --json | head`: stdout closed early is exit 141 and no error message."""
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())

    status = main(["breaker", "show", "stats-api", "--json"])

    assert status == 141
    assert [line for line in capsys.readouterr().err.splitlines()
            if not line.startswith(BANNER)] == []


def test_item14_closed_pipe_in_a_real_process_is_quiet() -> None:
    """With stdout a pipe nobody reads, the process ends with 141 and no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline_reliability.cli", "simulate", "--dates", "1",
             "--json", "--no-progress"],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120, env=_env(),
            check=False,
        )
    finally:
        os.close(write_end)

    assert proc.returncode == 141
    assert "Traceback" not in proc.stderr
    assert "Broken" not in proc.stderr
    assert "error" not in proc.stderr


# -- item 12 on simulate --emulators ----------------------------------------------------------


def test_item12_simulate_with_a_dead_emulator_fails_in_seconds(black_hole: str) -> None:
    """simulate --emulators with *_EMULATOR_HOST pointing nowhere: exit 2 within the deadline."""
    env = _env(FIRESTORE_EMULATOR_HOST=black_hole, PUBSUB_EMULATOR_HOST=_dead_port(),
               BIGQUERY_EMULATOR_HOST=f"http://{_dead_port()}", GOOGLE_CLOUD_PROJECT="p")

    proc, elapsed = _subprocess("simulate", "--emulators", "--dates", "1",
                                "--connect-timeout", "1.5", "--no-progress", env=env)

    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("pipeline-reliability: error: EmulatorError: the emulator at "
                               f"FIRESTORE_EMULATOR_HOST={black_hole} does not answer")
    assert elapsed < 1.5 + 5


@pytest.mark.parametrize("where", ["black_hole", "dead_port"])
def test_item12_unreachable_pubsub_stops_sweep_before_any_claim(
    cli: Cli, store: MemoryStore, monkeypatch: pytest.MonkeyPatch, black_hole: str, where: str
) -> None:
    """sweep --topic with Pub/Sub black-holed or down: exit 2 within the deadline, no write."""
    host = black_hole if where == "black_hole" else _dead_port()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", host)
    started = time.monotonic()

    run = cli("--connect-timeout", "1", "sweep", "phase3", DATE, "--topic", "triggers")

    elapsed = time.monotonic() - started
    assert run.status == 2, run.err
    errors = _errors(run)
    assert len(errors) == 1
    assert errors[0].startswith(
        "pipeline-reliability: error: --topic: PublishFailedError: no answer from Pub/Sub about "
        f"projects/{PROJECT}/topics/triggers within 1 s"
    )
    assert elapsed < 1 + 2
    assert store.stats.writes == 0


@pytest.mark.parametrize("where", ["black_hole", "dead_port"])
def test_item12_unreachable_bigquery_stops_replay_before_any_write(
    cli: Cli, store: MemoryStore, monkeypatch: pytest.MonkeyPatch, black_hole: str, where: str
) -> None:
    """replay with BigQuery black-holed or down: exit 2 within the deadline, no write."""
    host = black_hole if where == "black_hole" else _dead_port()
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", f"http://{host}")
    started = time.monotonic()

    run = cli("--connect-timeout", "1", "replay", "phase3", DATE, "--ledger-table", "ds.ledger")

    elapsed = time.monotonic() - started
    assert run.status == 2, run.err
    errors = _errors(run)
    assert len(errors) == 1
    assert errors[0].startswith("pipeline-reliability: error: BigQuery: SinkUnavailableError: "
                                "no answer from BigQuery within 1 s")
    assert elapsed < 1 + 2
    assert store.stats.writes == 0
