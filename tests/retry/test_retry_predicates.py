"""What ``is_transient`` and friends retry, on real api-core error objects."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
import requests
from google.auth import exceptions as _auth_exceptions
from retry_helpers import bigquery_error, gexc

from pipeline_reliability.errors import (
    CircuitOpenError,
    ConfigurationError,
    InvalidInputError,
    RetryExhaustedError,
    StoreConflictError,
    StoreUnavailableError,
    WriteFailedError,
)
from pipeline_reliability.retry import (
    all_of,
    any_of,
    if_exception_type,
    is_serialization_conflict,
    is_transient,
    is_transient_outside_transaction,
)

auth_exc: Any = _auth_exceptions  # google-auth is untyped here

CONFLICT = (
    "Could not serialize access to table my-proj:analytics.daily_scores "
    "due to concurrent update"
)

TRANSIENT = [
    gexc.ServiceUnavailable("unavailable"),
    gexc.InternalServerError("internal"),
    gexc.TooManyRequests("slow down"),
    gexc.ResourceExhausted("quota"),
    gexc.DeadlineExceeded("deadline"),
    gexc.GatewayTimeout("gateway timeout"),
    gexc.BadGateway("bad gateway"),
    ConnectionResetError("reset by peer"),
    requests.exceptions.ConnectionError("refused"),
    requests.exceptions.ReadTimeout("read timeout"),
    auth_exc.TransportError("token endpoint unreachable"),
    StoreUnavailableError("firestore down"),
    StoreConflictError("contention", attempts=5),
    CircuitOpenError("bq", "open", retry_after=timedelta(seconds=3)),
]

PERMANENT = [
    gexc.PermissionDenied("no"),
    gexc.Unauthenticated("who are you"),
    gexc.NotFound("missing"),
    gexc.AlreadyExists("exists"),
    gexc.InvalidArgument("bad arg"),
    gexc.BadRequest("Syntax error: Unexpected keyword"),
    gexc.FailedPrecondition("index missing"),
    gexc.Aborted("transaction aborted"),
    requests.exceptions.SSLError("certificate verify failed"),
    ValueError("bug"),
    KeyError("bug"),
    KeyboardInterrupt(),
    asyncio.CancelledError(),
    InvalidInputError("bad date"),
    ConfigurationError("bad option"),
    RetryExhaustedError("inner retry gave up", attempts=3, last_error=OSError()),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_transient_errors_are_retried(exc: BaseException) -> None:
    """Server-side, throttling and connection failures are transient."""
    assert is_transient(exc)


@pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: type(e).__name__)
def test_permanent_errors_are_not_retried(exc: BaseException) -> None:
    """Client errors, Aborted, bugs and our permanent errors are not retried."""
    assert not is_transient(exc)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (403, "rateLimitExceeded"),
        (429, "rateLimitExceeded"),
        (500, "backendError"),
        (400, "jobRateLimitExceeded"),
        (500, "internalError"),
    ],
)
def test_bigquery_transient_reasons_are_retried(status: int, reason: str) -> None:
    """A BigQuery error whose structured reason is transient is retried, whatever its status."""
    exc: Any = bigquery_error(status, reason)

    assert exc.errors[0]["reason"] == reason
    assert is_transient(exc)


@pytest.mark.parametrize(
    ("status", "reason"),
    [(403, "accessDenied"), (403, "quotaExceeded"), (400, "invalidQuery"), (404, "notFound")],
)
def test_bigquery_permanent_reasons_are_not_retried(status: int, reason: str) -> None:
    """Access, daily quota, invalid query and missing table reasons are permanent."""
    assert not is_transient(bigquery_error(status, reason))


def test_serialization_conflict_bad_request_is_retried() -> None:
    """A 400 BadRequest saying the table could not be serialized is a transient conflict."""
    exc = bigquery_error(400, "invalidQuery", CONFLICT)

    assert isinstance(exc, gexc.BadRequest)
    assert is_serialization_conflict(exc)
    assert is_transient(exc)


def test_transaction_aborted_by_concurrent_update_is_a_serialization_conflict() -> None:
    """BigQuery's cancellation of the later of two conflicting transactions is retried."""
    exc = bigquery_error(
        400,
        "invalidQuery",
        "Transaction is aborted due to concurrent update against table p:d.t",
    )

    assert is_serialization_conflict(exc)
    assert is_transient(exc)


def test_serialization_conflict_is_found_in_any_error_and_in_structured_entries() -> None:
    """The conflict message is recognised on our wrapped errors and in ``errors`` entries."""
    wrapped = WriteFailedError(f"MERGE failed: 400 {CONFLICT}", job_id="job-1")
    structured = gexc.BadRequest("query failed", errors=[{"reason": "x", "message": CONFLICT}])

    assert is_transient(wrapped)
    assert is_transient(structured)
    assert not is_transient(WriteFailedError("MERGE failed: 400 Syntax error"))


def test_aborted_only_retried_outside_transactions() -> None:
    """Aborted is left to Firestore's transaction retry, but retried for single RPCs."""
    aborted = gexc.Aborted("too much contention")

    assert not is_transient(aborted)
    assert is_transient_outside_transaction(aborted)
    assert is_transient_outside_transaction(gexc.ServiceUnavailable("x"))
    assert not is_transient_outside_transaction(gexc.PermissionDenied("x"))


def test_predicates_compose() -> None:
    """any_of, all_of and if_exception_type combine into new predicates."""
    timeouts = if_exception_type(TimeoutError)
    either = any_of(is_transient, timeouts)
    both = all_of(is_transient, if_exception_type(ConnectionError))

    assert either(TimeoutError())
    assert either(gexc.ServiceUnavailable("x"))
    assert not either(ValueError())
    assert both(ConnectionResetError())
    assert not both(gexc.ServiceUnavailable("x"))
    assert "TimeoutError" in either.__name__


def test_predicates_import_no_google_module() -> None:
    """Importing the retry package and classifying plain errors loads no google module."""
    code = (
        "import sys\n"
        "from pipeline_reliability.retry import is_transient, is_transient_outside_transaction\n"
        "assert is_transient(ConnectionError()) and not is_transient(ValueError())\n"
        "assert not is_transient_outside_transaction(ValueError())\n"
        "loaded = sorted(m for m in sys.modules if m == 'google' or m.startswith('google.'))\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )

    assert done.returncode == 0, done.stderr
