"""
The Firestore-backed :class:`StateStore`.

``google.cloud.firestore`` is imported inside functions only (DESIGN F10):
importing this module, or constructing a store, creates no client. Every error
the Google libraries raise is translated at this boundary by
:func:`map_firestore_errors` and chained (``raise ... from exc``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from .._keys import validate_id
from .._telemetry import span
from ..errors import (
    ConfigurationError,
    InvalidInputError,
    MissingDependencyError,
    ReliabilityError,
    StoreConflictError,
    StoreError,
    StoreUnavailableError,
)
from ._protocol import Delete, Outcome, Put, Snapshot, StoreStats
from ._values import normalise_document

__all__ = ["FirestoreStore", "map_firestore_errors"]

R = TypeVar("R")

# What the google client raises (as a ValueError) once every attempt of a
# transaction was aborted; its __cause__ is the last Aborted.
_EXHAUSTED = "Failed to commit transaction in"


def _firestore() -> Any:
    try:
        from google.cloud import firestore
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError("google-cloud-firestore", "firestore") from exc
    return firestore


@dataclass(slots=True)
class _Call:
    """What one ``transact`` call has done so far (read by the error mapping)."""

    attempts: int = 0
    committing: bool = False
    wrote: bool = False
    passthrough: BaseException | None = None


class FirestoreStore:
    """
    A :class:`StateStore` on Cloud Firestore (or its emulator).

    ``transact`` runs the callback in a Firestore read-write transaction
    (``google.cloud.firestore.transactional``): the document is read inside the
    transaction, and the callback sees the transaction's server read time as
    ``Snapshot.now``. Firestore re-runs the callback when the commit is aborted
    by a concurrent writer, up to ``max_attempts`` times.

    Google errors are translated (and chained): unreachable, deadline,
    internal and quota errors become ``StoreUnavailableError``; exhausted
    attempts ``StoreConflictError``; permission, authentication and
    precondition errors ``StoreError``; invalid arguments ``InvalidInputError``.
    ``stats`` counts as MemoryStore does.

    Args:
        client: A ``google.cloud.firestore.Client`` to use. When omitted, one is
            created on first use from ``project`` and ``database`` (and the
            usual environment: credentials, ``FIRESTORE_EMULATOR_HOST``).
        project: The Google Cloud project (default: from the environment).
        database: The Firestore database id (default: ``(default)``).
        prefix: Prepended to every collection id, e.g. ``"staging_"``, so that
            several deployments can share one database.
        max_attempts: Attempts per transaction before ``StoreConflictError``.
        timeout: Seconds allowed for each read, retries included. (The
            client library's own retry settings govern the begin and commit
            calls of a transaction: up to 60 s each when Firestore is down.)

    Raises:
        ConfigurationError: an option is out of range, or both ``client`` and
            ``project``/``database`` were given.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        project: str | None = None,
        database: str | None = None,
        prefix: str = "",
        max_attempts: int = 5,
        timeout: float = 30.0,
    ) -> None:
        if client is not None and (project is not None or database is not None):
            raise ConfigurationError("pass either client or project/database, not both")
        if max_attempts < 1:
            raise ConfigurationError("max_attempts must be at least 1")
        if not timeout > 0:
            raise ConfigurationError("timeout must be positive")
        if "/" in prefix:
            raise ConfigurationError(f"prefix {prefix!r} must not contain '/'")
        self.project = project
        self.database = database
        self.prefix = prefix
        self.max_attempts = max_attempts
        self.timeout = float(timeout)
        self._client = client
        self._owns_client = client is None
        self._lock = threading.Lock()
        self._reads = self._writes = self._transactions = self._conflicts = 0

    @property
    def client(self) -> Any:
        """The Firestore client, created on first access."""
        with self._lock:
            if self._client is None:
                kwargs = {"project": self.project}
                if self.database is not None:
                    kwargs["database"] = self.database
                try:
                    with map_firestore_errors("creating a Firestore client"):
                        self._client = _firestore().Client(**kwargs)
                except OSError as exc:
                    # e.g. "Project was not passed and could not be determined"
                    raise StoreError(f"creating a Firestore client failed: {exc}") from exc
            return self._client

    @property
    def stats(self) -> StoreStats:
        """Operation counts so far (a frozen copy)."""
        with self._lock:
            return StoreStats(self._reads, self._writes, self._transactions, self._conflicts)

    def reset_stats(self) -> None:
        """Set every operation count back to zero."""
        with self._lock:
            self._reads = self._writes = self._transactions = self._conflicts = 0

    def close(self) -> None:
        """Close the client if this store created it (a given client is left open)."""
        if not self._owns_client:
            return
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def get(self, collection: str, key: str) -> Snapshot:
        """Read one document (see :meth:`StateStore.get`)."""
        ref = self._ref(collection, key)
        attrs = {"store.backend": "firestore", "store.path": ref.path}
        with span("store", "get", attrs), map_firestore_errors(f"reading {ref.path}"):
            doc = ref.get(retry=self._retry(), timeout=self.timeout)
        with self._lock:
            self._reads += 1
        return _snapshot(collection, key, doc)

    def transact(
        self, collection: str, key: str, fn: Callable[[Snapshot], Outcome[R]]
    ) -> R:
        """Atomic read-modify-write in a transaction (see :meth:`StateStore.transact`)."""
        ref = self._ref(collection, key)
        client = self.client
        call = _Call()
        attempt = functools.partial(
            self._attempt, ref=ref, path=(collection, key), fn=fn, call=call, retry=self._retry()
        )
        with self._lock:
            self._transactions += 1
        attrs = {"store.backend": "firestore", "store.path": ref.path}
        with span("store", "transact", attrs) as current:
            # Every attempt after the first was caused by an aborted commit;
            # when the attempts ran out, the last one was aborted too.
            try:
                with map_firestore_errors(f"transaction on {ref.path}", call):
                    transaction = client.transaction(max_attempts=self.max_attempts)
                    result: R = _firestore().transactional(attempt)(transaction)
            except StoreConflictError:
                self._count(conflicts=call.attempts)
                raise
            except BaseException:
                self._count(conflicts=max(call.attempts - 1, 0))
                raise
            finally:
                if current.is_recording():
                    current.set_attribute("store.attempts", call.attempts)
        self._count(conflicts=call.attempts - 1, writes=int(call.wrote))
        return result

    def _attempt(
        self,
        tx: Any,
        *,
        ref: Any,
        path: tuple[str, str],
        fn: Callable[[Snapshot], Outcome[R]],
        call: _Call,
        retry: Any,
    ) -> R:
        """One attempt of a transaction: read in ``tx``, decide, stage the write."""
        call.attempts += 1
        call.committing = call.wrote = False
        doc = ref.get(transaction=tx, retry=retry, timeout=self.timeout)
        with self._lock:
            self._reads += 1
        try:
            outcome = fn(_snapshot(*path, doc))
            write = outcome.write
            # Validated as MemoryStore does, so both stores accept the same documents.
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
        # From here on the google client commits: a failure may have committed.
        call.committing = True
        return outcome.result

    def _count(self, *, conflicts: int, writes: int = 0) -> None:
        with self._lock:
            self._conflicts += conflicts
            self._writes += writes

    def _ref(self, collection: str, key: str) -> Any:
        validate_id(collection, "collection id")
        validate_id(self.prefix + collection, "collection id")
        validate_id(key)
        return self.client.collection(self.prefix + collection).document(key)

    def _retry(self) -> Any:
        # The client's default retry for reads runs for up to 300 s against an
        # unreachable server; bound it by our timeout instead.
        from google.api_core import exceptions as gexc
        from google.api_core import retry as gretry

        return gretry.Retry(
            predicate=gretry.if_exception_type(
                gexc.ServiceUnavailable, gexc.InternalServerError, gexc.DeadlineExceeded
            ),
            initial=0.1,
            maximum=2.0,
            multiplier=1.5,
            timeout=self.timeout,
        )


def _snapshot(collection: str, key: str, doc: Any) -> Snapshot:
    exists = bool(doc.exists)
    return Snapshot(
        collection=collection,
        key=key,
        data=doc.to_dict() if exists else None,
        version=doc.update_time if exists else None,
        now=doc.read_time,
    )


@contextmanager
def map_firestore_errors(what: str, call: _Call | None = None) -> Iterator[None]:
    """
    Translate what the Firestore client raises in the block into our errors.

    Exceptions of the user's callback (recorded in ``call``) pass unchanged.
    The client wraps some failures in a ``ValueError`` (exhausted attempts, a
    rollback that could not run), so the chain is searched for the Google
    error that explains the failure.
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
    what: str, exc: BaseException, call: _Call | None
) -> Exception | None:
    if isinstance(exc, ReliabilityError):
        # Already ours (e.g. MissingDependencyError): translating it again would hide it.
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
