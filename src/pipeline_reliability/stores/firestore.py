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
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from .._telemetry import span
from ..errors import StoreUnavailableError
from ._firestore_common import (
    Call,
    Deadline,
    begin_request,
    check_options,
    commit_request,
    creation_failed,
    firestore_module,
    first_batch,
    first_conflicts,
    map_firestore_errors,
    rerun_delay,
    rollback_request,
    snapshot_of,
    stage,
)
from ._protocol import Delete, Outcome, Put, Snapshot
from ._stats import CountingStore, call_timeout
from ._values import check_first, normalise_document

__all__ = ["FirestoreStore", "map_firestore_errors"]

R = TypeVar("R")
# The names the error-table tests and older callers import from here.
_Call = Call


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
        options = check_options(
            client, project=project, database=database, prefix=prefix,
            max_attempts=max_attempts, timeout=timeout,
        )
        self._options = options
        self.project = options.project
        self.database = options.database
        self.prefix = options.prefix
        self.max_attempts = options.max_attempts
        self.timeout = options.timeout
        self._client = client
        self._owns_client = client is None
        self._lock = threading.Lock()
        super().__init__()

    @property
    def client(self) -> Any:
        """The Firestore client, created on first access."""
        with self._lock:
            if self._client is None:
                try:
                    with map_firestore_errors("creating a Firestore client"):
                        self._client = firestore_module().Client(**self._options.client_kwargs())
                except OSError as exc:
                    # e.g. "Project was not passed and could not be determined"
                    raise creation_failed(exc) from exc
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
            doc = ref.get(**Deadline(seconds).rpc())
        self._count(reads=1)
        return snapshot_of(collection, key, doc)

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
        call = Call()
        deadline = Deadline(seconds)
        attempt = functools.partial(
            self._attempt, ref=ref, path=(collection, key), fn=fn, call=call, deadline=deadline
        )
        self._count(transactions=1)
        attrs = {"store.backend": "firestore", "store.path": ref.path}
        with span("store", "transact", attrs) as current:
            try:
                with map_firestore_errors(f"transaction on {ref.path}", call):
                    transaction = _bounded_transaction(client, self.max_attempts, deadline)
                    result: R = firestore_module().transactional(attempt)(transaction)
            except BaseException as exc:
                self._count(**call.counts(exc))
                raise
            finally:
                if current.is_recording():
                    current.set_attribute("store.attempts", call.attempts)
        self._count(**call.counts(None))
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
        deadline = Deadline(seconds)
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
            call = Call(attempts=1)
            with map_firestore_errors(f"write on {ref.path}", call):
                batch = first_batch(client, ref, snap, data)
                rpc_timeout = deadline.remaining()
                call.committing = True
                try:
                    # No retry: a commit whose response was lost must not be sent twice.
                    batch.commit(retry=None, timeout=rpc_timeout)
                except first_conflicts():
                    call.committing = False  # changed since the read: nothing applied
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
        call: Call,
        deadline: Deadline,
    ) -> R:
        """One attempt of a transaction: read in ``tx``, decide, stage the write."""
        call.attempts += 1
        call.committing = call.wrote = False
        delay = rerun_delay(call.attempts, deadline)
        if delay:
            time.sleep(delay)  # a re-run after an abort: do not meet the other writer again
        doc = ref.get(transaction=tx, **deadline.rpc())
        self._count(reads=1)
        return stage(tx, ref, doc, path=path, fn=fn, call=call)

    def _ref(self, collection: str, key: str) -> Any:
        prefixed, key = self._options.path(collection, key)
        return self.client.collection(prefixed).document(key)


def _bounded_transaction(client: Any, max_attempts: int, deadline: Deadline) -> Any:
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
        pr_deadline: Deadline

        def _begin(self, retry_id: bytes | None = None) -> None:
            response = self._client._firestore_api.begin_transaction(
                **begin_request(self, retry_id), **self.pr_deadline.rpc()
            )
            self._id = response.transaction

        def _commit(self) -> list[Any]:
            request = commit_request(self)
            response = self._client._firestore_api.commit(
                **request, timeout=self.pr_deadline.remaining()
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
                left = self.pr_deadline.left()
                if left > 0:
                    self._client._firestore_api.rollback(**rollback_request(self, left))
            finally:
                self._clean_up()

    return BoundedTransaction
