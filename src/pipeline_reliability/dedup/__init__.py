"""
Deduplication: one winner per key before a write, and message-level
idempotency on the state store.

- :func:`deduplicate_rows` keeps one row per key with a deterministic winner
  (the same rule ``BigQueryWriter.upsert`` applies in its MERGE).
- :class:`IdempotencyLedger` claims a key (a Pub/Sub message id, a request id)
  before work starts and remembers the result after, so a redelivery returns
  the stored result instead of doing the work again; :func:`idempotent` wraps
  a handler in it. :class:`AsyncIdempotencyLedger` is its asyncio twin.
"""

from __future__ import annotations

from ._async_ledger import AsyncIdempotencyLedger
from ._decorator import idempotent
from ._ledger import Claimed, ClaimResult, Completed, IdempotencyLedger, InProgress
from ._rows import DedupResult, deduplicate_rows

__all__ = [
    "AsyncIdempotencyLedger",
    "ClaimResult",
    "Claimed",
    "Completed",
    "DedupResult",
    "IdempotencyLedger",
    "InProgress",
    "deduplicate_rows",
    "idempotent",
]
