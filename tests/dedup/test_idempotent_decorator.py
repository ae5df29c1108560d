"""idempotent(): a handler runs once per key; redeliveries get the stored result."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from pipeline_reliability import (
    ConfigurationError,
    LockNotAcquiredError,
    MemoryStore,
    PayloadMismatchError,
)
from pipeline_reliability.dedup import Claimed, IdempotencyLedger, idempotent
from pipeline_reliability.retry import is_transient
from pipeline_reliability.testing import FakeClock


class Message:
    """A stand-in for a Pub/Sub message."""

    def __init__(self, message_id: str, data: str) -> None:
        self.message_id = message_id
        self.data = data


def make_ledger(store: MemoryStore, owner: str = "worker-1") -> IdempotencyLedger:
    """A ledger with a one-minute claim."""
    return IdempotencyLedger(store, owner=owner, claim_ttl=timedelta(minutes=1))


def test_a_redelivered_message_returns_the_stored_result(memory_store: MemoryStore) -> None:
    """The second delivery of a message id does not call the handler again."""
    calls: list[str] = []

    @idempotent(make_ledger(memory_store), key_fn=lambda m: m.message_id)
    def handle(message: Message) -> dict[str, Any]:
        calls.append(message.data)
        return {"rows": len(calls)}

    first = handle(Message("msg-1", "a"))
    second = handle(Message("msg-1", "a"))

    assert first == second == {"rows": 1}
    assert calls == ["a"]
    assert handle(Message("msg-2", "b")) == {"rows": 2}


def test_a_failing_handler_releases_its_claim_and_reraises(memory_store: MemoryStore) -> None:
    """An exception in the handler propagates and the next delivery runs it again."""
    attempts: list[int] = []

    @idempotent(make_ledger(memory_store), key_fn=lambda m: m.message_id)
    def handle(message: Message) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("transient downstream failure")
        return "ok"

    with pytest.raises(RuntimeError, match="downstream"):
        handle(Message("msg-1", "a"))

    assert handle(Message("msg-1", "a")) == "ok"
    assert len(attempts) == 2


def test_a_concurrent_delivery_raises_a_transient_lock_error(memory_store: MemoryStore) -> None:
    """While one delivery runs, another raises LockNotAcquiredError (transient: nack, retry)."""
    ledger = make_ledger(memory_store, "other-instance")
    busy = ledger.claim("msg-1")
    assert isinstance(busy, Claimed)

    @idempotent(make_ledger(memory_store), key_fn=lambda m: m.message_id)
    def handle(message: Message) -> str:
        raise AssertionError("must not run")

    with pytest.raises(LockNotAcquiredError) as caught:
        handle(Message("msg-1", "a"))

    assert caught.value.holder == "other-instance"
    assert caught.value.expires_at == busy.expires_at
    assert is_transient(caught.value)


def test_a_crashed_delivery_is_retried_after_the_claim_lapses(
    memory_store: MemoryStore, fake_clock: FakeClock
) -> None:
    """A claim left by a crashed worker stops blocking once claim_ttl has passed."""
    make_ledger(memory_store, "crashed").claim("msg-1")

    @idempotent(make_ledger(memory_store), key_fn=lambda m: m.message_id)
    def handle(message: Message) -> str:
        return "done"

    with pytest.raises(LockNotAcquiredError):
        handle(Message("msg-1", "a"))
    fake_clock.advance(timedelta(minutes=1))

    assert handle(Message("msg-1", "a")) == "done"


def test_payload_fn_detects_a_reused_key(memory_store: MemoryStore) -> None:
    """With payload_fn, the same key with other data raises PayloadMismatchError."""

    @idempotent(
        make_ledger(memory_store), key_fn=lambda m: m.message_id, payload_fn=lambda m: m.data
    )
    def handle(message: Message) -> str:
        return message.data

    handle(Message("msg-1", "a"))

    with pytest.raises(PayloadMismatchError):
        handle(Message("msg-1", "b"))


def test_coroutine_handlers_are_refused(memory_store: MemoryStore) -> None:
    """Decorating an async handler raises ConfigurationError at decoration time."""

    async def handle(message: Message) -> None:
        return None

    with pytest.raises(ConfigurationError):
        idempotent(make_ledger(memory_store), key_fn=lambda m: m.message_id)(handle)


def test_the_wrapper_keeps_the_handlers_name(memory_store: MemoryStore) -> None:
    """functools.wraps: the decorated handler keeps its name and docstring."""

    @idempotent(make_ledger(memory_store), key_fn=lambda m: m.message_id)
    def handle_completion(message: Message) -> None:
        """Handle one completion message."""

    assert handle_completion.__name__ == "handle_completion"
    assert handle_completion.__doc__ == "Handle one completion message."
