"""
The adaptive rate limiter's decisions, as pure functions over frozen values.

Two small machines, no I/O, no clock of their own (``now`` is passed in, in
seconds of a monotonic clock), shared by the sync and async limiters:

* AIMD: :func:`on_throttle` halves (``decrease``) the rate at most once per
  reaction window (``cooldown``); :func:`on_success` adds ``increase`` once
  per ``cooldown`` of calm. The rate always stays within ``[min_rate, max_rate]``.
* A token bucket with reservations (two floats: tokens and when):
  :func:`reserve` takes the next token now,
  or tells the caller how long to sleep for it. Tokens may go negative (each
  waiter owns a future slot), so waiters are served first come, first served
  and nobody polls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "MAX_RATE",
    "MIN_RATE",
    "AimdConfig",
    "AimdState",
    "on_success",
    "on_throttle",
    "reserve",
    "settle",
]

#: The largest rate (calls per second) any option accepts: far above what a
#: Python process can call, small enough that every derived number stays exact.
MAX_RATE = 1_000_000.0
#: The smallest (one call in about 11.6 days): no rate, floor or share is ever zero.
MIN_RATE = 1e-6


@dataclass(frozen=True, slots=True)
class AimdConfig:
    """The AIMD constants (validated by the limiter's constructor)."""

    min_rate: float
    max_rate: float
    increase: float
    decrease: float
    cooldown: float


@dataclass(frozen=True, slots=True)
class AimdState:
    """
    Where the AIMD machine stands.

    Attributes:
        rate: The current rate, calls per second.
        decreased_at: When the rate was last decreased (``-inf``: never).
        changed_at: When the rate last changed either way (``-inf``: never);
            increases are counted from here, so a decrease restarts the calm period.
    """

    rate: float
    decreased_at: float = -math.inf
    changed_at: float = -math.inf


def on_throttle(
    state: AimdState, config: AimdConfig, now: float, *, sent_at: float | None = None
) -> AimdState:
    """
    The state after a throttling signal (a 429) observed at ``now``.

    The rate is multiplied by ``decrease`` (never below ``min_rate``) unless it
    was already decreased less than ``cooldown`` ago: one overload usually
    answers a burst of calls with a burst of 429s, and they must count once.
    A call sent before the last decrease (``sent_at < decreased_at``) says
    nothing about the new rate and is ignored for the same reason. Returns
    ``state`` itself when nothing changes.
    """
    if now - state.decreased_at < config.cooldown:
        return state
    if sent_at is not None and sent_at < state.decreased_at:
        return state
    rate = max(config.min_rate, state.rate * config.decrease)
    return AimdState(rate, now, now)


def on_success(state: AimdState, config: AimdConfig, now: float) -> AimdState:
    """
    The state after a call succeeded at ``now``.

    Once per ``cooldown`` without a change, the rate grows by ``increase``
    (never above ``max_rate``). Returns ``state`` itself when nothing changes,
    which is what almost every call sees.
    """
    if now - state.changed_at < config.cooldown or state.rate >= config.max_rate:
        return state
    return AimdState(min(config.max_rate, state.rate + config.increase), state.decreased_at, now)


def settle(tokens: float, at: float, rate: float, burst: float, now: float) -> tuple[float, float]:
    """The bucket ``(tokens, at)`` refilled at ``rate`` up to ``now`` (before the rate changes)."""
    if now <= at:
        return tokens, at
    return min(burst, tokens + (now - at) * rate), now


def reserve(
    tokens: float, at: float, rate: float, burst: float, now: float, *, max_wait: float
) -> tuple[float, float, float]:
    """
    Take one token from the bucket ``(tokens, at)`` for a caller willing to wait
    up to ``max_wait`` seconds.

    The bucket is two numbers, not an object, because this runs on every
    call: ``tokens`` available at time ``at`` (negative: reserved ahead; a
    fresh bucket is ``(burst, now)``). Returns the new ``tokens``, ``at`` and
    how long the caller must wait for its slot (``0.0``: a token was there).
    When that wait would be longer than ``max_wait``, nothing is taken: the
    bucket comes back unchanged and the wait says how far a token is.
    Refilling is computed from ``now`` and never beyond ``burst`` tokens.
    """
    if now > at:
        tokens += (now - at) * rate
        tokens = min(tokens, burst)
        fresh = now
    else:
        fresh = at
    if tokens >= 1.0:
        return tokens - 1.0, fresh, 0.0
    wait = (1.0 - tokens) / rate
    if wait > max_wait:
        return tokens, fresh, wait
    return tokens - 1.0, fresh, wait
