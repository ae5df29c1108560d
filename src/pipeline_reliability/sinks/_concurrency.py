"""
A ``ConcurrencyLimit`` around each BigQuery MERGE/DML statement of the writer.

BigQuery admits a bounded number of concurrent DML statements per table (20,
then ``rateLimitExceeded`` bursts); a fleet-wide limit keeps the writers of
every instance under it. The slot is held for one statement attempt, never
across the retry policy's sleeps, so a waiting writer holds no slot.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from .._validate import describe
from ..errors import ConfigurationError
from ..limits import ConcurrencyLimit

__all__ = ["StatementSlot", "check_concurrency", "statement_slot"]

StatementSlot = Callable[[], AbstractContextManager[object]]


def check_concurrency(value: object) -> ConcurrencyLimit | None:
    """Return ``value`` if it is ``None`` or a ``ConcurrencyLimit``."""
    if value is not None and not isinstance(value, ConcurrencyLimit):
        raise ConfigurationError(
            f"concurrency must be a ConcurrencyLimit or None, got {describe(value)}"
        )
    return value


def statement_slot(limit: ConcurrencyLimit | None) -> StatementSlot:
    """What to enter around each statement: a slot of ``limit``, or nothing."""
    if limit is None:
        return nullcontext
    return limit.slot
