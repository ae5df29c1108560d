"""
The retry arithmetic as pure functions: backoff caps, jittered delays and
server-suggested waits. Property-tested without running anything.

They read a policy through :class:`Backoff` (the four numbers they need), so
this module depends on nothing else in the package.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol

__all__ = ["Backoff", "backoff_cap", "next_delay", "suggested_delay"]


class Backoff(Protocol):
    """What the arithmetic needs of a :class:`~pipeline_reliability.RetryPolicy`."""

    @property
    def initial_seconds(self) -> float: ...
    @property
    def maximum_seconds(self) -> float: ...
    @property
    def multiplier(self) -> float: ...
    @property
    def deadline_seconds(self) -> float | None: ...


def backoff_cap(policy: Backoff, retry_number: int) -> float:
    """
    Return ``min(maximum, initial * multiplier**retry_number)`` without overflowing.

    ``retry_number`` counts retries from 0 (the wait after the first failure).
    """
    maximum = policy.maximum_seconds
    try:
        grown = policy.initial_seconds * policy.multiplier**retry_number
    except OverflowError:
        return maximum
    return min(maximum, grown)


def next_delay(
    policy: Backoff,
    *,
    retry_number: int,
    elapsed: float,
    suggested: float | None = None,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float | None:
    """
    Return how long to sleep before the next attempt, or ``None`` to stop.

    Args:
        policy: The policy.
        retry_number: 0 for the wait after the first failure, 1 after the second, …
        elapsed: Seconds since the first attempt started.
        suggested: A server-suggested wait in seconds, if the error carried one.
        uniform: The jitter source (``random.uniform``), injectable for tests.

    Returns:
        A delay in ``[0, maximum]`` that ends no later than the deadline, or
        ``None`` when the deadline leaves no time (or less than the server asked
        for, capped at ``maximum``: retrying earlier is known to fail).
    """
    delay = uniform(0.0, backoff_cap(policy, retry_number))
    floor = 0.0 if suggested is None else min(max(suggested, 0.0), policy.maximum_seconds)
    delay = max(delay, floor)
    deadline = policy.deadline_seconds
    if deadline is None:
        return delay
    remaining = deadline - elapsed
    if remaining <= 0 or floor > remaining:
        return None
    return min(delay, remaining)


def suggested_delay(exc: BaseException) -> float | None:
    """
    Return the wait, in seconds, that ``exc`` says the server asked for, if any.

    Read, in order: a ``retry_after`` attribute (seconds or ``timedelta``, as on
    :class:`~pipeline_reliability.errors.CircuitOpenError`); then, for
    ``google.api_core`` errors, a ``google.rpc.RetryInfo`` entry of
    ``exc.details`` (a protobuf message with ``retry_delay`` from gRPC, or a
    JSON dict ``{"@type": ".../google.rpc.RetryInfo", "retryDelay": "1.5s"}``
    from REST).
    """
    hint = getattr(exc, "retry_after", None)
    if isinstance(hint, timedelta):
        return max(hint.total_seconds(), 0.0)
    if isinstance(hint, int | float) and not isinstance(hint, bool) and math.isfinite(hint):
        return max(float(hint), 0.0)
    google = sys.modules.get("google.api_core.exceptions")
    if google is None or not isinstance(exc, google.GoogleAPICallError):
        return None
    for detail in exc.details:
        found = _retry_info_seconds(detail)
        if found is not None:
            return found
    return None


def _retry_info_seconds(detail: Any) -> float | None:
    if isinstance(detail, dict):
        if not str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            return None
        text = str(detail.get("retryDelay", ""))  # proto3 JSON Duration: "1.5s"
        try:
            return _finite(float(text.removesuffix("s")))
        except ValueError:
            return None
    delay = getattr(detail, "retry_delay", None)
    if type(detail).__name__ != "RetryInfo" or delay is None:
        return None
    return _finite(getattr(delay, "seconds", 0) + getattr(delay, "nanos", 0) / 1e9)


def _finite(seconds: float) -> float | None:
    return max(float(seconds), 0.0) if math.isfinite(seconds) else None
