"""
Retries for transient failures only, bounded by attempts and a total deadline.

Built on tenacity. Retry only errors that may heal (:func:`is_transient`) and
only operations that are safe to repeat (DESIGN F9): a retry around a
non-idempotent write can apply it twice.

Example::

    from pipeline_reliability.retry import RetryPolicy, retry_transient

    @retry_transient(attempts=5, deadline=30)
    def load_partition(day: str) -> None: ...

    RetryPolicy(attempts=3).call(client.get_document, ref)

    for attempt in retrying(attempts=3):
        with attempt:
            run_merge()

    # At most 20 % more load on a sick dependency, whatever ``attempts`` says:
    reads = RetryPolicy(attempts=5, budget=0.2)
"""

from __future__ import annotations

from ._api import AttemptBlock, retry_transient, retrying
from ._backoff import suggested_delay
from ._budget import RetryBudget
from ._policy import RetryPolicy
from ._predicates import (
    BIGQUERY_TRANSIENT_REASONS,
    THROTTLING_REASONS,
    Predicate,
    all_of,
    any_of,
    if_exception_type,
    is_serialization_conflict,
    is_throttling,
    is_transient,
    is_transient_outside_transaction,
)
from ._testing import is_testing, set_testing

__all__ = [
    "AttemptBlock",
    "BIGQUERY_TRANSIENT_REASONS",
    "Predicate",
    "RetryBudget",
    "RetryPolicy",
    "THROTTLING_REASONS",
    "all_of",
    "any_of",
    "if_exception_type",
    "is_serialization_conflict",
    "is_testing",
    "is_throttling",
    "is_transient",
    "is_transient_outside_transaction",
    "retry_transient",
    "retrying",
    "set_testing",
    "suggested_delay",
]
