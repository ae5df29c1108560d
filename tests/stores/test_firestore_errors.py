"""
The translation table of Google errors at the FirestoreStore boundary.

Outages cannot be produced on demand by the emulator quickly (a closed port
is covered in test_firestore.py), so the table is checked with the real
exception classes of google-api-core, google-auth and grpc, shaped the way
the Firestore client raises them.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions as _gexc
from google.auth import exceptions as _auth_exc

from pipeline_reliability import (
    InvalidInputError,
    StoreConflictError,
    StoreError,
    StoreUnavailableError,
)
from pipeline_reliability.stores.firestore import _Call, map_firestore_errors

# The Google exception constructors are untyped.
gexc: Any = _gexc
auth_exc: Any = _auth_exc


def _raise_in(exc: BaseException, call: _Call | None = None) -> Any:
    """Raise ``exc`` inside the mapping and return what comes out."""
    with pytest.raises(BaseException) as info, map_firestore_errors("reading c/d", call):
        raise exc
    return info.value


def _chained(outer: BaseException, inner: BaseException, *, cause: bool) -> BaseException:
    if cause:
        outer.__cause__ = inner
    else:
        outer.__context__ = inner
    return outer


def _grpc_error() -> BaseException:
    import grpc  # type: ignore[import-untyped]

    error: BaseException = grpc.RpcError()
    return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (gexc.ServiceUnavailable("down"), StoreUnavailableError),
        (gexc.DeadlineExceeded("slow"), StoreUnavailableError),
        (gexc.InternalServerError("oops"), StoreUnavailableError),
        (gexc.Unknown("?"), StoreUnavailableError),
        (gexc.ResourceExhausted("quota"), StoreUnavailableError),
        (gexc.RetryError("Timeout of 1.0s exceeded", None), StoreUnavailableError),
        (auth_exc.TransportError("metadata server"), StoreUnavailableError),
        (ConnectionResetError("reset"), StoreUnavailableError),
        (gexc.Aborted("contention"), StoreConflictError),
        (gexc.PermissionDenied("iam"), StoreError),
        (gexc.Unauthenticated("who"), StoreError),
        (gexc.FailedPrecondition("index"), StoreError),
        (gexc.NotFound("database"), StoreError),
        (auth_exc.DefaultCredentialsError("no credentials"), StoreError),
        (gexc.InvalidArgument("bad value"), InvalidInputError),
        (TypeError("Cannot convert to a Firestore Value"), InvalidInputError),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.__name__,
)
def test_google_errors_are_translated_and_chained(
    error: BaseException, expected: type[Exception]
) -> None:
    """Each Google error becomes the documented library error, with the original as cause."""
    raised = _raise_in(error)

    assert expected is type(raised)
    assert error is raised.__cause__


def test_grpc_errors_are_unavailable() -> None:
    """A raw grpc.RpcError (not wrapped by api-core) counts as unavailability."""
    error = _grpc_error()

    raised = _raise_in(error)

    assert isinstance(raised, StoreUnavailableError)
    assert error is raised.__cause__


def test_transient_flags_follow_the_classes() -> None:
    """Unavailability and conflicts are transient; permission problems are not."""
    assert _raise_in(gexc.ServiceUnavailable("x")).transient
    assert _raise_in(gexc.Aborted("x")).transient
    assert not _raise_in(gexc.PermissionDenied("x")).transient


def test_exhausted_attempts_become_a_conflict_with_the_attempt_count() -> None:
    """The client's 'Failed to commit transaction in N attempts' is StoreConflictError(N)."""
    aborted = gexc.Aborted("Transaction lock timeout.")
    error = _chained(
        ValueError("Failed to commit transaction in 3 attempts."), aborted, cause=True
    )

    raised = _raise_in(error, _Call(attempts=3, committing=True))

    assert isinstance(raised, StoreConflictError)
    assert raised.attempts == 3
    assert error is raised.__cause__


def test_rollback_complaint_is_explained_by_the_error_before_it() -> None:
    """A ValueError from a rollback that could not run is mapped by the error it interrupted."""
    retry = gexc.RetryError("Timeout of 60.0s exceeded", gexc.ServiceUnavailable("down"))
    error = _chained(
        ValueError("The transaction has no transaction ID, so it cannot be rolled back."),
        retry,
        cause=False,
    )

    raised = _raise_in(error, _Call(attempts=0))

    assert isinstance(raised, StoreUnavailableError)
    assert raised.maybe_committed is False


def test_failure_while_committing_may_have_committed() -> None:
    """Unavailability after the callback returned sets maybe_committed."""
    raised = _raise_in(gexc.ServiceUnavailable("down"), _Call(attempts=1, committing=True))

    assert isinstance(raised, StoreUnavailableError)
    assert raised.maybe_committed is True


def test_failure_before_committing_did_not_commit() -> None:
    """Unavailability during the read leaves maybe_committed False."""
    raised = _raise_in(gexc.ServiceUnavailable("down"), _Call(attempts=1, committing=False))

    assert isinstance(raised, StoreUnavailableError)
    assert raised.maybe_committed is False


def test_callback_errors_pass_through_unchanged() -> None:
    """The callback's exception escapes as itself, even one that looks like a Google error."""
    error = gexc.ServiceUnavailable("raised by the user's callback")

    raised = _raise_in(error, _Call(attempts=1, passthrough=error))

    assert error is raised


def test_callback_error_wins_over_a_failed_rollback() -> None:
    """When the rollback after a callback error fails, the callback's error is still raised."""
    error = KeyError("callback")
    rollback = _chained(gexc.ServiceUnavailable("rollback failed"), error, cause=False)

    raised = _raise_in(rollback, _Call(attempts=1, passthrough=error))

    assert error is raised


@pytest.mark.parametrize("error", [KeyboardInterrupt(), KeyError("k"), RuntimeError("r")])
def test_unrelated_errors_are_not_translated(error: BaseException) -> None:
    """Errors that did not come from Google's libraries propagate unchanged."""
    assert error is _raise_in(error)


def test_a_transaction_rerun_waits_a_jittered_growing_delay_bounded_by_the_deadline() -> None:
    """
    Re-runs after an abort back off (full jitter, 20 ms doubling, at most 1 s)
    and never wait more than half the time left; the first attempt never waits.
    """
    from pipeline_reliability.stores._firestore_common import Deadline, rerun_delay

    long = Deadline(60.0)
    assert rerun_delay(1, long) == 0.0
    for attempt, cap in ((2, 0.02), (3, 0.04), (8, 1.0), (40, 1.0)):
        delays = [rerun_delay(attempt, long) for _ in range(200)]
        assert all(0.0 <= d <= cap for d in delays), (attempt, max(delays))
        assert max(delays) > cap / 2  # jittered over the whole range, not a constant
    short = Deadline(0.2)
    assert all(rerun_delay(20, short) <= short.left() / 2 + 1e-3 for _ in range(50))
    assert rerun_delay(20, Deadline(1e-9)) == 0.0  # no time left: no wait
