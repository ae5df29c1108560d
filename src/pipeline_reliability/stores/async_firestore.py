"""
The Firestore-backed :class:`AsyncStateStore`, on the official asyncio client.

It is :class:`~pipeline_reliability.stores.firestore.FirestoreStore` awaited:
the same options, deadlines, decision step and error translation (all in
``_firestore_common``), with ``google.cloud.firestore.AsyncClient`` and
``async_transactional`` doing the I/O. No thread pool: every wait is an
``await`` on grpc's asyncio channel.

``google.cloud.firestore`` is imported inside functions only (DESIGN F10).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

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

if TYPE_CHECKING:
    import asyncio

__all__ = ["AsyncFirestoreStore"]

R = TypeVar("R")


class AsyncFirestoreStore(CountingStore):
    """
    An :class:`AsyncStateStore` on Cloud Firestore (or its emulator).

    The asyncio twin of :class:`~pipeline_reliability.FirestoreStore`, with
    the same constructor and the same behaviour: ``transact`` runs the
    callback in a read-write transaction of the official async client
    (``google.cloud.firestore.async_transactional``) and the callback sees
    the transaction's server read time as ``Snapshot.now``; aborted commits
    re-run it up to ``max_attempts`` times; Google errors are translated as
    FirestoreStore translates them; ``stats`` counts the same.

    Every call is bounded twice: each RPC (begin, read, commit, rollback and
    their retries) gets the time left of the call's deadline, and the whole
    call runs under ``asyncio.timeout``, so that a store that never answers
    raises ``StoreUnavailableError`` within ``timeout`` and leaves no task
    behind. Cancelling a call cancels its RPCs and rolls the transaction
    back; a transaction commits all of its write or none of it.

    **One client per event loop.** A grpc asyncio channel belongs to the
    loop it was first used on. Without ``client=``, the store makes one
    ``AsyncClient`` per running loop on first use in that loop (so one store
    may serve ``asyncio.run`` after ``asyncio.run``, or loops in several
    threads); call :meth:`aclose` in a loop before it ends to close that
    loop's client. A ``client`` you pass is used as is, on the loop you use it on.

    Args:
        client: A ``google.cloud.firestore.AsyncClient`` to use. When
            omitted, one is created per event loop from ``project`` and
            ``database`` (and the usual environment: credentials,
            ``FIRESTORE_EMULATOR_HOST``).
        project: The Google Cloud project (default: from the environment).
        database: The Firestore database id (default: ``(default)``).
        prefix: Prepended to every collection id, e.g. ``"staging_"``.
        max_attempts: Attempts per transaction before ``StoreConflictError``.
        timeout: The default deadline of one operation in seconds (every
            attempt, RPC and internal retry included). A call's own
            ``timeout=`` replaces it for that call.

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
            client,
            project=project,
            database=database,
            prefix=prefix,
            max_attempts=max_attempts,
            timeout=timeout,
        )
        self._options = options
        self.project = options.project
        self.database = options.database
        self.prefix = options.prefix
        self.max_attempts = options.max_attempts
        self.timeout = options.timeout
        self._given = client
        self._clients: dict[asyncio.AbstractEventLoop, Any] = {}
        self._lock = threading.Lock()
        super().__init__()

    @property
    def client(self) -> Any:
        """
        The ``AsyncClient`` of the running event loop (created on first use in it).

        Raises:
            RuntimeError: no event loop is running in this thread.
            StoreError: the client could not be created (no project, no credentials).
        """
        if self._given is not None:
            return self._given
        import asyncio  # not at module level: importing the package must not load asyncio

        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(loop)
            if client is None:
                # Clients of loops that ended cannot be closed any more; drop them.
                for ended in [other for other in self._clients if other.is_closed()]:
                    del self._clients[ended]
                try:
                    with map_firestore_errors("creating a Firestore client"):
                        client = firestore_module().AsyncClient(**self._options.client_kwargs())
                except OSError as exc:
                    # e.g. "Project was not passed and could not be determined"
                    raise creation_failed(exc) from exc
                self._clients[loop] = client
            return client

    async def aclose(self) -> None:
        """Close the running loop's client if this store created it (a given client stays open)."""
        if self._given is not None:
            return
        import asyncio

        with self._lock:
            client = self._clients.pop(asyncio.get_running_loop(), None)
        api = None if client is None else client._firestore_api_internal
        if api is not None:
            await api.transport.close()

    async def get(self, collection: str, key: str, *, timeout: float | None = None) -> Snapshot:
        """Read one document (see :meth:`StateStore.get`)."""
        seconds = call_timeout(timeout) or self.timeout
        ref = self._ref(collection, key)
        what = f"reading {ref.path}"
        attrs = {"store.backend": "firestore", "store.path": ref.path}
        with span("store", "get", attrs):
            async with _bounded(seconds, what, None):
                with map_firestore_errors(what):
                    doc = await ref.get(**Deadline(seconds).async_rpc())
        self._count(reads=1)
        return snapshot_of(collection, key, doc)

    async def transact(
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
        # Imported before the clock starts: a first import is not the store's wait.
        transaction_class = _transaction_class()
        transactional = firestore_module().async_transactional
        call = Call()
        deadline = Deadline(seconds)
        attempt = functools.partial(
            self._attempt, ref=ref, path=(collection, key), fn=fn, call=call, deadline=deadline
        )
        self._count(transactions=1)
        what = f"transaction on {ref.path}"
        attrs = {"store.backend": "firestore", "store.path": ref.path}
        with span("store", "transact", attrs) as current:
            try:
                async with _bounded(seconds, what, call):
                    with map_firestore_errors(what, call):
                        transaction = transaction_class(client, max_attempts=self.max_attempts)
                        transaction.pr_deadline = deadline
                        result: R = await transactional(attempt)(transaction)
            except BaseException as exc:
                self._count(**call.counts(exc))
                raise
            finally:
                if current.is_recording():
                    current.set_attribute("store.attempts", call.attempts)
        self._count(**call.counts(None))
        return result

    async def transact_from(
        self,
        first: Snapshot,
        fn: Callable[[Snapshot], Outcome[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        """
        :meth:`transact` whose first attempt decides on ``first`` (see
        :meth:`FirestoreStore.transact_from`): one commit with a precondition
        on the snapshot's ``update_time``; a conflict goes on as a transaction
        with the time left.
        """
        snap = check_first(first, datetime)
        seconds = call_timeout(timeout) or self.timeout
        end = time.monotonic() + seconds
        deadline = Deadline(seconds)
        ref = self._ref(snap.collection, snap.key)
        client = self.client
        self._count(transactions=1)
        what = f"write on {ref.path}"
        attrs = {"store.backend": "firestore", "store.path": ref.path}
        with span("store", "transact_from", attrs):
            outcome = fn(snap)  # its exceptions propagate unchanged, as in ``transact``
            write = outcome.write
            data = normalise_document(write.data) if isinstance(write, Put) else None
            if write is None or (isinstance(write, Delete) and snap.data is None):
                return outcome.result
            call = Call(attempts=1)
            async with _bounded(seconds, what, call):
                with map_firestore_errors(what, call):
                    batch = first_batch(client, ref, snap, data)
                    call.committing = True
                    try:
                        # No retry: a commit whose response was lost must not be sent twice.
                        await batch.commit(retry=None, timeout=deadline.remaining())
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
        return await self.transact(snap.collection, snap.key, fn, timeout=left)

    async def _attempt(
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
            import asyncio

            await asyncio.sleep(delay)  # a re-run after an abort: do not meet the other writer
        doc = await ref.get(transaction=tx, **deadline.async_rpc())
        self._count(reads=1)
        return stage(tx, ref, doc, path=path, fn=fn, call=call)

    def _ref(self, collection: str, key: str) -> Any:
        prefixed, key = self._options.path(collection, key)
        return self.client.collection(prefixed).document(key)


@asynccontextmanager
async def _bounded(seconds: float, what: str, call: Call | None) -> AsyncIterator[None]:
    """
    End the block after ``seconds`` with ``StoreUnavailableError``.

    The RPC deadlines normally end a hung call first (a little earlier, see
    ``Deadline``); this bounds whatever awaits outside them. The timeout
    cancels the block in its own task: nothing is left running.
    """
    import asyncio

    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as exc:
        if call is not None and exc is call.passthrough:
            raise  # the callback's own TimeoutError passes unchanged
        raise StoreUnavailableError(
            f"{what}: no answer within {seconds:g} s",
            maybe_committed=call is not None and call.committing,
        ) from exc


@functools.cache
def _transaction_class() -> type:
    # The async client's AsyncTransaction, like the sync one, sends begin,
    # commit and rollback with the client's default retry and timeout (up to
    # 60 s each: googleapis/python-firestore#879). These overrides are its own
    # methods (2.x) with the call's deadline passed to each RPC.
    from google.cloud.firestore_v1.async_transaction import AsyncTransaction

    class BoundedAsyncTransaction(AsyncTransaction):
        pr_deadline: Deadline

        async def _begin(self, retry_id: bytes | None = None) -> None:
            response = await self._client._firestore_api.begin_transaction(
                **begin_request(self, retry_id), **self.pr_deadline.async_rpc()
            )
            self._id = response.transaction

        async def _commit(self) -> list[Any]:
            request = commit_request(self)
            response = await self._client._firestore_api.commit(
                **request, timeout=self.pr_deadline.remaining()
            )
            self._clean_up()
            self.write_results = list(response.write_results)
            self.commit_time = response.commit_time
            return self.write_results

        async def _rollback(self) -> None:
            if not self.in_progress:
                # Cancelled or failed before begin answered: nothing to roll back,
                # and the error that got us here is the one to report.
                return
            try:
                # Out of time: skip the RPC; Firestore expires the transaction itself.
                left = self.pr_deadline.left()
                if left > 0:
                    await self._client._firestore_api.rollback(**rollback_request(self, left))
            finally:
                self._clean_up()

    return BoundedAsyncTransaction
