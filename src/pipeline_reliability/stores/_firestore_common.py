"""
What the sync and async Firestore stores share: options, deadlines, the
decision step of a transaction attempt, and the translation of Google errors.

The two stores differ only in how they wait (a blocking client or the asyncio
one); everything decided between the read and the commit is here, once.
``google.cloud.firestore`` is imported inside functions only (DESIGN F10).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from .._keys import validate_id
from ..errors import (
    ConfigurationError,
    InvalidInputError,
    MissingDependencyError,
    ReliabilityError,
    StoreConflictError,
    StoreError,
    StoreUnavailableError,
)
from ._protocol import Delete, Outcome, Put, Snapshot
from ._stats import call_timeout
from ._values import normalise_document

__all__ = [
    "MAX_ATTEMPTS",
    "Call",
    "Deadline",
    "StoreOptions",
    "begin_request",
    "check_options",
    "commit_request",
    "creation_failed",
    "firestore_module",
    "map_firestore_errors",
    "rollback_request",
    "snapshot_of",
    "stage",
]

R = TypeVar("R")
# Far more than contention ever needs; bounds the loop whatever a caller passes.
MAX_ATTEMPTS = 1000
_MARGIN = 0.1

# What the google client raises (as a ValueError) once every attempt of a
# transaction was aborted; its __cause__ is the last Aborted.
_EXHAUSTED = "Failed to commit transaction in"


def firestore_module() -> Any:
    """``google.cloud.firestore``, or ``MissingDependencyError`` without the extra."""
    try:
        from google.cloud import firestore
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError("google-cloud-firestore", "firestore") from exc
    return firestore


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """The checked constructor options of a Firestore store."""

    project: str | None
    database: str | None
    prefix: str
    max_attempts: int
    timeout: float

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Client``/``AsyncClient`` made by the store."""
        kwargs: dict[str, Any] = {"project": self.project}
        if self.database is not None:
            kwargs["database"] = self.database
        return kwargs

    def path(self, collection: str, key: str) -> tuple[str, str]:
        """The prefixed collection id and the key, checked as document path parts."""
        validate_id(collection, "collection id")
        validate_id(self.prefix + collection, "collection id")
        validate_id(key)
        return self.prefix + collection, key


def check_options(
    client: Any,
    *,
    project: str | None,
    database: str | None,
    prefix: str,
    max_attempts: int,
    timeout: float,
) -> StoreOptions:
    """
    Check a Firestore store's constructor options.

    Raises:
        ConfigurationError: an option is out of range, or both ``client`` and
            ``project``/``database`` were given.
    """
    if client is not None and (project is not None or database is not None):
        raise ConfigurationError("pass either client or project/database, not both")
    attempts = cast(object, max_attempts)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not (
        1 <= attempts <= MAX_ATTEMPTS
    ):
        raise ConfigurationError(
            f"max_attempts must be an integer in 1..{MAX_ATTEMPTS}, got {max_attempts!r:.100}"
        )
    try:
        seconds = call_timeout(timeout) or 0.0
    except InvalidInputError as exc:
        raise ConfigurationError(str(exc)) from None
    if not seconds:
        raise ConfigurationError("timeout must be positive")
    if not isinstance(prefix, str):
        raise ConfigurationError(f"prefix must be a string, got {prefix!r:.100}")
    for what, value in (("project", project), ("database", database)):
        if value is not None and (not isinstance(cast(object, value), str) or not value):
            raise ConfigurationError(f"{what} must be a non-empty string, got {value!r:.100}")
    if "/" in prefix:
        raise ConfigurationError(f"prefix {prefix!r} must not contain '/'")
    return StoreOptions(project, database, prefix, max_attempts, seconds)


# Backoff before a transaction's re-run (after an abort): full jitter on
# 20 ms * 2**n, at most 1 s. The client library re-runs at once; two writers
# of one document then meet again at every attempt (the emulator, whose
# conflicts cost a 2 s lock wait, livelocked a pair for 15 attempts).
_RERUN_BASE = 0.02
_RERUN_CAP = 1.0


def rerun_delay(attempt: int, deadline: Deadline) -> float:
    """
    Seconds to wait before ``attempt`` (>= 2) of a transaction: jittered,
    growing, and never more than half the time left.
    """
    if attempt < 2:
        return 0.0
    cap = min(_RERUN_CAP, _RERUN_BASE * 2 ** min(attempt - 2, 10))
    return max(0.0, min(random.uniform(0, cap), deadline.left() / 2))


class Deadline:
    """The time left for one store operation, shared by every RPC it makes."""

    __slots__ = ("end",)

    def __init__(self, seconds: float) -> None:
        # The RPCs get the time left minus a margin (at most 100 ms, 20% of
        # short deadlines) for what happens after gRPC gives up: waking the
        # thread, building and translating the error, on a busy machine. So
        # the CALL returns within ``seconds``, not just its last RPC.
        self.end = time.monotonic() + seconds - min(_MARGIN, seconds / 5)

    def left(self) -> float:
        """Seconds left, possibly zero or negative (never raises)."""
        return self.end - time.monotonic()

    def remaining(self) -> float:
        """Seconds left; raises ``DeadlineExceeded`` (a Google error, mapped later) at zero."""
        left = self.left()
        if left <= 0:
            from google.api_core import exceptions as gexc

            error: Any = gexc.DeadlineExceeded  # untyped constructor
            raise error("the store operation's deadline was exceeded")
        return left

    def rpc(self) -> dict[str, Any]:
        """``retry=`` and ``timeout=`` for one blocking RPC: retries end at the deadline."""
        from google.api_core import retry as gretry

        left = self.remaining()
        return {"retry": _retry(gretry.Retry, left), "timeout": left}

    def async_rpc(self) -> dict[str, Any]:
        """``retry=`` and ``timeout=`` for one asyncio RPC: retries end at the deadline."""
        from google.api_core import retry as gretry

        left = self.remaining()
        return {"retry": _retry(gretry.AsyncRetry, left), "timeout": left}


def _retry(kind: Any, seconds: float) -> Any:
    # The client's default retry for reads runs for up to 300 s against an
    # unreachable server; bound it by the operation's deadline instead.
    from google.api_core import exceptions as gexc
    from google.api_core import retry as gretry

    return kind(
        predicate=gretry.if_exception_type(
            gexc.ServiceUnavailable, gexc.InternalServerError, gexc.DeadlineExceeded
        ),
        initial=min(0.1, seconds / 4),
        maximum=2.0,
        multiplier=1.5,
        timeout=seconds,
    )


def begin_request(tx: Any, retry_id: bytes | None) -> dict[str, Any]:
    """The BeginTransaction request the client would send (google-cloud-firestore 2.x)."""
    if tx.in_progress:
        raise ValueError(f"transaction {tx._id!r} already in progress")
    return {
        "request": {
            "database": tx._client._database_string,
            "options": tx._options_protobuf(retry_id),
        },
        "metadata": tx._client._rpc_metadata,
    }


def commit_request(tx: Any) -> dict[str, Any]:
    """The Commit request of ``tx``, with no retry: a lost response must not commit twice."""
    if not tx.in_progress:
        raise ValueError("no transaction in progress to commit")
    return {
        "request": {
            "database": tx._client._database_string,
            "writes": tx._write_pbs,
            "transaction": tx._id,
        },
        "metadata": tx._client._rpc_metadata,
        "retry": None,
    }


def rollback_request(tx: Any, left: float) -> dict[str, Any]:
    """The Rollback request of ``tx`` within ``left`` seconds, with no retry."""
    return {
        "request": {"database": tx._client._database_string, "transaction": tx._id},
        "metadata": tx._client._rpc_metadata,
        "retry": None,
        "timeout": left,
    }


def snapshot_of(collection: str, key: str, doc: Any) -> Snapshot:
    """Our Snapshot of a client ``DocumentSnapshot``: server read time as ``now``."""
    exists = bool(doc.exists)
    return Snapshot(
        collection=collection,
        key=key,
        data=doc.to_dict() if exists else None,
        version=doc.update_time if exists else None,
        now=doc.read_time,
    )


@dataclass(slots=True)
class Call:
    """What one ``transact`` call has done so far (read by the error mapping)."""

    attempts: int = 0
    committing: bool = False
    wrote: bool = False
    passthrough: BaseException | None = None

    def counts(self, error: BaseException | None) -> dict[str, int]:
        """
        What the finished call adds to ``stats`` (``error``: what it raised, if anything).

        Every attempt after the first was caused by an aborted commit; when
        the attempts ran out, the last one was aborted too.
        """
        if error is None:
            return {"conflicts": self.attempts - 1, "writes": int(self.wrote)}
        if isinstance(error, StoreConflictError):
            return {"conflicts": self.attempts}
        return {"conflicts": max(self.attempts - 1, 0)}


def stage(
    tx: Any,
    ref: Any,
    doc: Any,
    *,
    path: tuple[str, str],
    fn: Callable[[Snapshot], Outcome[R]],
    call: Call,
) -> R:
    """
    The decision of one transaction attempt: run ``fn`` on the read and stage its write.

    The caller has counted the attempt and read ``doc`` inside ``tx``.
    """
    try:
        outcome = fn(snapshot_of(*path, doc))
        write = outcome.write
        # Validated as MemoryStore does, so every store accepts the same documents.
        data = normalise_document(write.data) if isinstance(write, Put) else None
    except BaseException as exc:
        call.passthrough = exc
        raise
    if data is not None:
        tx.set(ref, data)
        call.wrote = True
    elif isinstance(write, Delete) and doc.exists:
        # Deleting a missing document is no write, as in MemoryStore.
        tx.delete(ref)
        call.wrote = True
    # From here on the google client commits: a failure may have committed
    # (a commit without writes changes nothing, so it cannot have).
    call.committing = call.wrote
    return outcome.result


@contextmanager
def map_firestore_errors(what: str, call: Call | None = None) -> Iterator[None]:
    """
    Translate what the Firestore client raises in the block into our errors.

    Exceptions of the user's callback (recorded in ``call``) pass unchanged,
    and so does a task's cancellation. The client wraps some failures in a
    ``ValueError`` (exhausted attempts, a rollback that could not run), so
    the chain is searched for the Google error that explains the failure.
    """
    try:
        yield
    except BaseException as exc:
        if call is not None and call.passthrough is not None:
            if exc is call.passthrough:
                raise
            # A rollback failed after the callback raised: the callback's error
            # is still the one the caller must see; nothing was committed.
            raise call.passthrough from None
        mapped = _translate(what, exc, call)
        if mapped is None:
            raise
        raise mapped from exc


def _translate(  # noqa: PLR0911 - one return per class of failure reads best
    what: str, exc: BaseException, call: Call | None
) -> Exception | None:
    if isinstance(exc, ReliabilityError) or not isinstance(exc, Exception):
        # Already ours (e.g. MissingDependencyError), or a cancellation or
        # KeyboardInterrupt: translating it would hide it.
        return None
    from google.api_core import exceptions as gexc

    attempts = call.attempts if call is not None else 1
    if isinstance(exc, ValueError) and str(exc).startswith(_EXHAUSTED):
        return StoreConflictError(
            f"{what} was aborted by concurrent writers {attempts} times", attempts=attempts
        )
    cause = _google_error(exc)
    if cause is None:
        if isinstance(exc, TypeError | ValueError):
            return InvalidInputError(f"{what}: {exc}")
        return None
    message = f"{what} failed: {type(cause).__name__}: {cause}"
    if isinstance(cause, gexc.Aborted):
        return StoreConflictError(message, attempts=attempts)
    if isinstance(cause, gexc.InvalidArgument):
        return InvalidInputError(message)
    if _is_unavailable(cause):
        maybe = call is not None and call.committing
        return StoreUnavailableError(message, maybe_committed=maybe)
    return StoreError(message)


def _google_error(exc: BaseException) -> BaseException | None:
    """The outermost error in the chain that came from Google's libraries or the network."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, gexc.GoogleAPIError | auth_exc.GoogleAuthError | ConnectionError):
            return current
        if _is_grpc_error(current):
            return current
        current = current.__cause__ or current.__context__
    return None


def _is_grpc_error(exc: BaseException) -> bool:
    # grpc.RpcError, found without importing grpc (it has no type stubs).
    return any(c.__name__ == "RpcError" and c.__module__ == "grpc" for c in type(exc).__mro__)


def _is_unavailable(cause: BaseException) -> bool:
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    transient = (
        gexc.ServiceUnavailable,
        gexc.DeadlineExceeded,
        gexc.InternalServerError,
        gexc.Unknown,
        gexc.RetryError,
        gexc.ResourceExhausted,
        gexc.TooManyRequests,
        gexc.Cancelled,
        auth_exc.TransportError,
        ConnectionError,
    )
    return isinstance(cause, transient) or _is_grpc_error(cause)


def creation_failed(exc: OSError) -> StoreError:
    """The error for a client that could not be made (e.g. no project in the environment)."""
    return StoreError(f"creating a Firestore client failed: {exc}")


def first_batch(client: Any, ref: Any, first: Snapshot, data: dict[str, Any] | None) -> Any:
    """
    The first attempt of ``transact_from`` as one batch with a precondition.

    The write applies only if the document is still as ``first`` saw it:
    still missing (``exists=False``), or still at its ``update_time``.
    ``data`` is the normalised document to put, ``None`` to delete.
    Works for the sync and the async client (same batch API).
    """
    option = (
        client.write_option(exists=False)
        if first.version is None
        else client.write_option(last_update_time=first.version)
    )
    batch = client.batch()
    if data is not None:
        batch.set(ref, data)
        option.modify_write(batch._write_pbs[-1])  # set() takes no option
    else:
        batch.delete(ref, option=option)
    return batch


def first_conflicts() -> tuple[type[BaseException], ...]:
    """
    The errors of a ``first_batch`` commit that mean "not applied, changed since".

    A failed precondition, a document created (Conflict/AlreadyExists) or
    deleted (NotFound) since the read, or Aborted: a transaction holds the
    document (the emulator's lock timeout). The call goes on as a transaction.
    """
    from google.api_core import exceptions as gexc

    return (gexc.FailedPrecondition, gexc.Conflict, gexc.NotFound, gexc.Aborted)
