"""
``IdempotencyLedger``: claim a key before the work, remember the result after.

One document per key in the state store, changed only inside
``StateStore.transact`` and judged by the store's own clock
(``Snapshot.now``)::

    (absent) --claim--> in_progress --complete--> completed
                          |     ^                      |
      release, or claim_ttl     | claim                | expires_after
      runs out (a crash)  v     | (attempt + 1)        v
                        released / lapsed           (absent)

A claim is a lease (``claim_ttl``): a worker that crashes mid-way blocks the
key only until the lease runs out. An entry is forgotten ``expires_after``
after it was claimed or completed: that is the dedup window.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from .._telemetry import span
from .._validate import describe
from ..errors import ConfigurationError
from ..retry import RetryPolicy
from ..stores._protocol import Outcome, Snapshot, StateStore
from ._claims import (
    BaseLedger,
    Claimed,
    ClaimResult,
    Completed,
    InProgress,
    count_claim,
    is_async_store,
)

__all__ = ["ClaimResult", "Claimed", "Completed", "IdempotencyLedger", "InProgress"]

T = TypeVar("T")


class IdempotencyLedger(BaseLedger):
    """
    Message-level deduplication on a :class:`~pipeline_reliability.StateStore`.

    Args:
        store: Where claims live (``MemoryStore``, ``FirestoreStore``).
        expires_after: How long an entry is remembered after its last change
            (the dedup window). A completed key claimed again within it returns
            :class:`Completed`; after it, the key is new again. Default 24 h.
        claim_ttl: How long a claim holds before another worker may take it
            over (a crashed worker blocks a key no longer than this). Set it
            above the longest expected run time. Default 10 min, the longest
            Pub/Sub ack deadline.
        collection: Store collection of the entries.
        owner: A label for this worker, as operators will see it in
            :class:`InProgress` (default: host, pid and a random suffix). It
            does not identify claims: every ``claim`` call gets a claim id
            unique to this ledger object, so two ledgers given the same
            ``owner`` still exclude each other.
        retry: Retry policy for store calls. Every operation is safe to
            repeat, even after a lost response (the claim id is fixed before
            the first attempt). Default: 4 attempts within 20 s.

    Raises:
        ConfigurationError: bad store, durations (each a positive timedelta of
            at most ``MAX_DURATION``), collection, owner or retry policy.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        store: StateStore,
        *,
        expires_after: timedelta = timedelta(hours=24),
        claim_ttl: timedelta = timedelta(minutes=10),
        collection: str = "idempotency",
        owner: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        candidate: object = store
        if not isinstance(candidate, StateStore) or is_async_store(candidate):
            hint = ": use AsyncIdempotencyLedger" if is_async_store(store) else ""
            raise ConfigurationError(f"store must be a StateStore, got {describe(store)}{hint}")
        super().__init__(
            expires_after=expires_after,
            claim_ttl=claim_ttl,
            collection=collection,
            owner=owner,
            retry=retry,
        )
        self.store = store

    def claim(self, key: str, payload: Any = None) -> ClaimResult:
        """
        Claim ``key`` for work on ``payload``, unless it is done or being done.

        Returns:
            :class:`Claimed` (do the work), :class:`InProgress` (another live
            claim holds it) or :class:`Completed` (done; here is the result).

        Raises:
            PayloadMismatchError: the key is remembered with a different payload.
            InvalidInputError: a key that is not a non-empty string of at most
                64 KiB of UTF-8, or a payload that is not JSON serialisable
                (self-referential, nested too deeply, NaN, ...).
            StoreError, RetryExhaustedError: the store failed.
        """
        key, decide = self._claim_decision(key, payload)
        with span("dedup", "claim", lambda: {"dedup.key": key, "dedup.owner": self.owner}):
            result = self._transact(key, decide)
        count_claim(result)
        return result

    def complete(self, key: str | Claimed, result: Any = None) -> Completed:
        """
        Record that the work on ``key`` is done, with its ``result``.

        Pass the :class:`Claimed` you got from :meth:`claim` (a plain key also
        works while an entry for it exists). Completing twice keeps the first
        result. A claim that was taken over meanwhile is still completed: the
        work *was* done, and recording it spares a third run.

        ``result`` is stored as JSON (``datetime`` as an ISO string, tuples
        and sets as lists), and later :class:`Completed` results are what
        JSON gives back.

        Returns:
            The recorded completion (the earlier one if there was one).

        Raises:
            InvalidInputError: ``result`` is not JSON serialisable or too large,
                or a plain key has no entry.
            PayloadMismatchError: the claim outlived the dedup window and the
                key was claimed again meanwhile for another payload.
            StoreError, RetryExhaustedError: the store failed.
        """
        name, decide = self._complete_decision(key, result)
        with span("dedup", "complete", lambda: {"dedup.key": name}):
            return self._transact(name, decide)

    def release(self, key: str | Claimed) -> bool:
        """
        Give a claim up after a failure, so the next delivery may retry at once.

        With a :class:`Claimed`, only that claim is released; with a plain
        key, only an in-progress claim made by this ledger object (not merely
        one with the same ``owner``). Another worker's claim is never touched (F7).

        Returns:
            Whether a claim was released.

        Raises:
            InvalidInputError: ``key`` is neither a valid key nor a :class:`Claimed`.
            StoreError, RetryExhaustedError: the store failed.
        """
        name, decide = self._release_decision(key)
        with span("dedup", "release", lambda: {"dedup.key": name}):
            return self._transact(name, decide)

    def _transact(self, key: str, decide: Callable[[Snapshot], Outcome[T]]) -> T:
        return self.retry.call(self.store.transact, self.collection, self._document(key), decide)
