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
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

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
from ._protocol import Delete, Outcome, Put, Snapshot
from ._stats import CountingStore, call_timeout
from ._values import check_first, normalise_document

__all__ = ["FirestoreStore", "map_firestore_errors"]

R = TypeVar("R")
# Far more than contention ever needs; bounds the loop whatever a caller passes.
_MAX_ATTEMPTS = 1000
_MARGIN = 0.1

# What the google client raises (as a ValueError) once every attempt of a
# transaction was aborted; its __cause__ is the last Aborted.
_EXHAUSTED = "Failed to commit transaction in"


def _firestore() -> Any:
    try:
        from google.cloud import firestore
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError("google-cloud-firestore", "firestore") from exc
    return firestore


class _Deadline:
    """The time left for one store operation, shared by every RPC it makes."""

    __slots__ = ("_end",)

    def __init__(self, seconds: float) -> None:
        # The RPCs get the time left minus a margin (at most 100 ms, 20% of
        # short deadlines) for what happens after gRPC gives up: waking the
        # thread, building and translating the error, on a busy machine. So
        # the CALL returns within ``seconds``, not just its last RPC.
        self._end = time.monotonic() + seconds - min(_MARGIN, seconds / 5)

    def remaining(self) -> float:
        """Seconds left; raises ``DeadlineExceeded`` (a Google error, mapped later) at zero."""
        left = self._end - time.monotonic()
        if left <= 0:
            from google.api_core import exceptions as gexc

            error: Any = gexc.DeadlineExceeded  # untyped constructor
            raise error("the store operation's deadline was exceeded")
        return left

    def rpc(self) -> dict[str, Any]:
        """``retry=`` and ``timeout=`` for one RPC: retries and attempts end at the deadline."""
        left = self.remaining()
        return {"retry": _retry(left), "timeout": left}


@dataclass(slots=True)
class _Call:
    """What one ``transact`` call has done so far (read by the error mapping)."""

    attempts: int = 0
    committing: bool = False
    wrote: bool = False
    passthrough: BaseException | None = None


class FirestoreStore(CountingStore):
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
        timeout: The default deadline of one operation in seconds: a whole
            ``get`` or ``transact`` (every attempt, RPC and internal retry:
            begin, read, commit) ends within it. A call's own ``timeout=``
            replaces it for that call.

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
        attempts = cast(object, max_attempts)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or not (
            1 <= attempts <= _MAX_ATTEMPTS
        ):
            raise ConfigurationError(
                f"max_attempts must be an integer in 1..{_MAX_ATTEMPTS}, got {max_attempts!r:.100}"
            )
        try:
            timeout = call_timeout(timeout) or 0.0
        except InvalidInputError as exc:
            raise ConfigurationError(str(exc)) from None
        if not timeout:
            raise ConfigurationError("timeout must be positive")
        if not isinstance(prefix, str):
            raise ConfigurationError(f"prefix must be a string, got {prefix!r:.100}")
        for what, value in (("project", project), ("database", database)):
            if value is not None and (not isinstance(cast(object, value), str) or not value):
                raise ConfigurationError(f"{what} must be a non-empty string, got {value!r:.100}")
        if "/" in prefix:
            raise ConfigurationError(f"prefix {prefix!r} must not contain '/'")
        self.project = project
        self.database = database
        self.prefix = prefix
        self.max_attempts = max_attempts
        self.timeout = timeout
        self._client = client
        self._owns_client = client is None
        self._lock = threading.Lock()
        super().__init__()

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

    def close(self) -> None:
        """Close the client if this store created it (a given client is left open)."""
        if not self._owns_client:
            return
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
        """Read one document (see :meth:`StateStore.get`)."""
        seconds = call_timeout(timeout) or self.timeout
        ref = self._ref(collection, key)
        attrs = {"store.backend": "firestore", "store.path": ref.path}
        with span("store", "get", attrs), map_firestore_errors(f"reading {ref.path}"):
            doc = ref.get(**_Deadline(seconds).rpc())
        self._count(reads=1)
        return _snapshot(collection, key, doc)

    def transact(
        self,
        collection: str,
        key: str,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        """Atomic read-modify-write in a transaction (see :meth:`StateStore.transact`)."""
        seconds = call_timeout(timeout) or self.timeout
        ref = self._ref(collection, key)
        client = self.client
        call = _Call()
        deadline = _Deadline(seconds)
        attempt = functools.partial(
            self._attempt, ref=ref, path=(collection, key), fn=fn, call=call, deadline=deadline
        )
        self._count(transactions=1)
        attrs = {"store.backend": "firestore", "store.path": ref.path}
        with span("store", "transact", attrs) as current:
            # Every attempt after the first was caused by an aborted commit;
            # when the attempts ran out, the last one was aborted too.
            try:
                with map_firestore_errors(f"transaction on {ref.path}", call):
                    transaction = _bounded_transaction(client, self.max_attempts, deadline)
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

    def transact_from(
        self,
        first: Snapshot,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        """
        :meth:`transact` whose first attempt decides on ``first``, a snapshot
        this store's :meth:`get` returned (see :meth:`MemoryStore.transact_from`).

        The first attempt is one commit with a precondition instead of a
        transaction: the write applies only if the document is still at
        ``first.version`` (its ``update_time``), or still missing. So a first
        attempt costs the read the caller already made plus one commit RPC,
        where a transaction costs begin, read and commit. When the
        precondition fails, a concurrent writer came first: the attempt is
        discarded (counted as a conflict) and the rest is :meth:`transact`
        with the time left. A decision that writes nothing returns at once,
        serialisable at ``first``'s read time.
        """
        snap = check_first(first, datetime)
        seconds = call_timeout(timeout) or self.timeout
        end = time.monotonic() + seconds
        deadline = _Deadline(seconds)
        ref = self._ref(snap.collection, snap.key)
        client = self.client
        self._count(transactions=1)
        attrs = {"store.backend": "firestore", "store.path": ref.path}
        with span("store", "transact_from", attrs):
            # The callback's exceptions propagate unchanged, as in ``transact``.
            outcome = fn(snap)
            write = outcome.write
            data = normalise_document(write.data) if isinstance(write, Put) else None
            if write is None or (isinstance(write, Delete) and snap.data is None):
                return outcome.result
            from google.api_core import exceptions as gexc

            call = _Call(attempts=1)
            with map_firestore_errors(f"write on {ref.path}", call):
                # Missing when read: it must still be missing; else still at that update_time.
                option = (
                    client.write_option(exists=False)
                    if snap.version is None
                    else client.write_option(last_update_time=snap.version)
                )
                batch = client.batch()
                if data is not None:
                    batch.set(ref, data)
                    option.modify_write(batch._write_pbs[-1])  # set() takes no option
                else:
                    batch.delete(ref, option=option)
                rpc_timeout = deadline.remaining()
                call.committing = True
                try:
                    # No retry: a commit whose response was lost must not be sent twice.
                    batch.commit(retry=None, timeout=rpc_timeout)
                except (gexc.FailedPrecondition, gexc.Conflict, gexc.NotFound, gexc.Aborted):
                    # Changed since the read (a deleted document: NotFound in
                    # production), or aborted by a transaction holding the
                    # document (the emulator's lock timeout): nothing applied.
                    call.committing = False
                else:
                    self._count(writes=1)
                    return outcome.result
        # ``transact`` counts its own transaction: this one was its first attempt.
        self._count(transactions=-1, conflicts=1)
        left = end - time.monotonic()
        if left <= 0:
            raise StoreUnavailableError(f"transaction on {ref.path} ran out of time")
        return self.transact(snap.collection, snap.key, fn, timeout=left)

    def _attempt(
        self,
        tx: Any,
        *,
        ref: Any,
        path: tuple[str, str],
        fn: Callable[[Snapshot], Outcome[R]],
        call: _Call,
        deadline: _Deadline,
    ) -> R:
        """One attempt of a transaction: read in ``tx``, decide, stage the write."""
        call.attempts += 1
        call.committing = call.wrote = False
        doc = ref.get(transaction=tx, **deadline.rpc())
        self._count(reads=1)
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
        # From here on the google client commits: a failure may have committed
        # (a commit without writes changes nothing, so it cannot have).
        call.committing = call.wrote
        return outcome.result

    def _ref(self, collection: str, key: str) -> Any:
        validate_id(collection, "collection id")
        validate_id(self.prefix + collection, "collection id")
        validate_id(key)
        return self.client.collection(self.prefix + collection).document(key)


def _retry(seconds: float) -> Any:
    # The client's default retry for reads runs for up to 300 s against an
    # unreachable server; bound it by the operation's deadline instead.
    from google.api_core import exceptions as gexc
    from google.api_core import retry as gretry

    return gretry.Retry(
        predicate=gretry.if_exception_type(
            gexc.ServiceUnavailable, gexc.InternalServerError, gexc.DeadlineExceeded
        ),
        initial=min(0.1, seconds / 4),
        maximum=2.0,
        multiplier=1.5,
        timeout=seconds,
    )


def _bounded_transaction(client: Any, max_attempts: int, deadline: _Deadline) -> Any:
    """A client transaction whose begin, commit and rollback RPCs end at ``deadline``."""
    transaction = _transaction_class()(client, max_attempts=max_attempts)
    transaction.pr_deadline = deadline
    return transaction


@functools.cache
def _transaction_class() -> type:
    # google-cloud-firestore's Transaction calls begin_transaction, commit and
    # rollback with the client's default retry and timeout (up to 60 s each,
    # and not configurable: googleapis/python-firestore#879), so a store that
    # does not answer would hold a transaction for minutes. These overrides
    # are the client's own methods (2.x) with our deadline passed to the RPC.
    from google.cloud.firestore_v1.transaction import Transaction

    class BoundedTransaction(Transaction):
        pr_deadline: _Deadline

        def _begin(self, retry_id: bytes | None = None) -> None:
            if self.in_progress:
                raise ValueError(f"transaction {self._id!r} already in progress")
            response = self._client._firestore_api.begin_transaction(
                request={
                    "database": self._client._database_string,
                    "options": self._options_protobuf(retry_id),
                },
                metadata=self._client._rpc_metadata,
                **self.pr_deadline.rpc(),
            )
            self._id = response.transaction

        def _commit(self) -> list[Any]:
            if not self.in_progress:
                raise ValueError("no transaction in progress to commit")
            # No retry: a commit whose response was lost must not be sent twice.
            response = self._client._firestore_api.commit(
                request={
                    "database": self._client._database_string,
                    "writes": self._write_pbs,
                    "transaction": self._id,
                },
                metadata=self._client._rpc_metadata,
                retry=None,
                timeout=self.pr_deadline.remaining(),
            )
            self._clean_up()
            self.write_results = list(response.write_results)
            self.commit_time = response.commit_time
            return self.write_results

        def _rollback(self) -> None:
            if not self.in_progress:
                raise ValueError("no transaction in progress to roll back")
            try:
                # Out of time: skip the RPC; Firestore expires the transaction itself.
                left = self.pr_deadline._end - time.monotonic()
                if left > 0:
                    self._client._firestore_api.rollback(
                        request={
                            "database": self._client._database_string,
                            "transaction": self._id,
                        },
                        metadata=self._client._rpc_metadata,
                        retry=None,
                        timeout=left,
                    )
            finally:
                self._clean_up()

    return BoundedTransaction


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
