"""``AsyncIdempotencyLedger``: the idempotency ledger for asyncio code."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from .._telemetry import span
from .._validate import describe
from ..errors import ConfigurationError
from ..retry import RetryPolicy
from ..stores._protocol import AsyncStateStore, Outcome, Snapshot
from ._claims import BaseLedger, Claimed, ClaimResult, Completed, count_claim

__all__ = ["AsyncIdempotencyLedger"]

T = TypeVar("T")


class AsyncIdempotencyLedger(BaseLedger):
    """
    :class:`IdempotencyLedger` for asyncio code, over an
    :class:`~pipeline_reliability.AsyncStateStore`.

    Same options, same entries and the same decisions as ``IdempotencyLedger``
    (both run the very same transaction callbacks, so a sync and an async
    worker sharing a store exclude each other); ``claim``, ``complete`` and
    ``release`` are coroutines. Store calls are retried with
    :meth:`RetryPolicy.acall` (``asyncio.sleep`` between attempts).

    Raises:
        ConfigurationError: ``store`` is not an ``AsyncStateStore`` (a blocking
            store belongs to ``IdempotencyLedger``), or a bad option (see
            :class:`IdempotencyLedger`).
    """

    def __init__(
        self,
        store: AsyncStateStore,
        *,
        expires_after: timedelta = timedelta(hours=24),
        claim_ttl: timedelta = timedelta(minutes=10),
        collection: str = "idempotency",
        owner: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        candidate: object = store
        awaited = all(
            inspect.iscoroutinefunction(getattr(candidate, op, None)) for op in ("get", "transact")
        )
        if not isinstance(candidate, AsyncStateStore) or not awaited:
            raise ConfigurationError(
                "store must be an AsyncStateStore (AsyncMemoryStore, AsyncFirestoreStore), "
                f"got {describe(store)}"
            )
        super().__init__(
            expires_after=expires_after,
            claim_ttl=claim_ttl,
            collection=collection,
            owner=owner,
            retry=retry,
        )
        self.store = store

    async def claim(self, key: str, payload: Any = None) -> ClaimResult:
        """
        Claim ``key`` for work on ``payload`` (see :meth:`IdempotencyLedger.claim`).

        Returns:
            :class:`Claimed`, :class:`InProgress` or :class:`Completed`.

        Raises:
            PayloadMismatchError: the key is remembered with a different payload.
            InvalidInputError: a bad key, or a payload that is not JSON serialisable.
            StoreError, RetryExhaustedError: the store failed.
        """
        key, decide = self._claim_decision(key, payload)
        with span("dedup", "claim", lambda: {"dedup.key": key, "dedup.owner": self.owner}):
            result = await self._transact(key, decide)
        count_claim(result)
        return result

    async def complete(self, key: str | Claimed, result: Any = None) -> Completed:
        """
        Record that the work on ``key`` is done (see :meth:`IdempotencyLedger.complete`).

        Raises:
            InvalidInputError: ``result`` is not JSON serialisable or too large,
                or a plain key has no entry.
            PayloadMismatchError: the key was claimed again for another payload.
            StoreError, RetryExhaustedError: the store failed.
        """
        name, decide = self._complete_decision(key, result)
        with span("dedup", "complete", lambda: {"dedup.key": name}):
            return await self._transact(name, decide)

    async def release(self, key: str | Claimed) -> bool:
        """
        Give a claim up after a failure (see :meth:`IdempotencyLedger.release`).

        Raises:
            InvalidInputError: ``key`` is neither a valid key nor a :class:`Claimed`.
            StoreError, RetryExhaustedError: the store failed.
        """
        name, decide = self._release_decision(key)
        with span("dedup", "release", lambda: {"dedup.key": name}):
            return await self._transact(name, decide)

    async def _transact(self, key: str, decide: Callable[[Snapshot], Outcome[T]]) -> T:
        return await self.retry.acall(
            self.store.transact, self.collection, self._document(key), decide
        )
