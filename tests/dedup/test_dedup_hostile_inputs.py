"""
Hostile input to every public dedup entry point (issue 10 item 9, DESIGN §4).

``deduplicate_rows`` with hostile rows, key values, ``order_by`` values and
options; ``IdempotencyLedger`` built and called with hostile options, keys,
payloads and results; the ``idempotent`` decorator with hostile arguments and
hostile keys/payloads computed from a message. Only ``ReliabilityError``
subclasses may escape, and a refused call writes nothing
(``store.stats.writes`` on a fresh MemoryStore does not move).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostile_values import HOSTILE_SETTINGS, hostile, nested, self_dict, self_list
from pipeline_reliability import MemoryStore
from pipeline_reliability.dedup import (
    Claimed,
    IdempotencyLedger,
    deduplicate_rows,
    idempotent,
)
from pipeline_reliability.errors import (
    ConfigurationError,
    InvalidInputError,
    ReliabilityError,
)
from pipeline_reliability.testing import FakeClock


def _typed_only(call: Callable[[], Any]) -> Any:
    """Run ``call``; only ReliabilityError may escape (it is swallowed: ``None``)."""
    try:
        return call()
    except ReliabilityError:
        return None


def _no_write_if_refused(store: MemoryStore, call: Callable[[], Any]) -> Any:
    before = store.stats.writes
    try:
        return call()
    except ReliabilityError:
        assert store.stats.writes == before, "a refused call wrote to the store"
        return None


# -- deduplicate_rows ---------------------------------------------------------------------

rows = st.lists(
    st.fixed_dictionaries(
        {"id": hostile | st.integers(0, 3), "at": hostile | st.integers(0, 3)}
    ),
    max_size=6,
)


@HOSTILE_SETTINGS
@given(data=rows, key_value=hostile)
def test_deduplicate_rows_with_hostile_key_and_order_values(
    data: list[dict[str, Any]], key_value: Any
) -> None:
    """Recursive, deep, unhashable or incomparable values in key and order_by fields."""
    data = [*data, {"id": key_value, "at": key_value}, {"id": key_value, "at": 1}]
    for keep in ("last", "first"):
        result = _typed_only(
            functools.partial(deduplicate_rows, data, key="id", order_by="at", keep=keep)
        )
        if result is not None:
            assert len(result.rows) + result.dropped == len(data)
    _typed_only(lambda: deduplicate_rows(iter(data), key=("id", "at")))


@HOSTILE_SETTINGS
@given(
    argument=st.sampled_from(("rows", "key", "order_by", "keep", "null_keys")),
    value=hostile,
)
def test_deduplicate_rows_with_hostile_arguments(argument: str, value: Any) -> None:
    """Any one hostile argument: a result or a typed error."""
    args: dict[str, Any] = {
        "rows": [{"id": 1, "at": 1}, {"id": 1, "at": 2}],
        "key": "id",
        "order_by": "at",
        "keep": "last",
        "null_keys": "report",
    }
    _typed_only(lambda: deduplicate_rows(**{**args, argument: value}))


@pytest.mark.parametrize(
    "bad",
    [
        self_list(),
        self_dict(),
        nested(10_000, lambda v: [v]),
        nested(10_000, lambda v: {"k": v}),
    ],
)
def test_item9_recursive_dedup_keys_are_invalid_input(bad: Any) -> None:
    """Self-referential or 10 000-deep key values raised RecursionError."""
    with pytest.raises(InvalidInputError):
        deduplicate_rows([{"id": bad}], key="id")


def test_item9_recursive_order_by_values_are_invalid_input() -> None:
    """Comparing two self-referential order_by values raised RecursionError."""
    data = [{"id": 1, "at": self_list()}, {"id": 1, "at": self_list()}]

    with pytest.raises(InvalidInputError):
        deduplicate_rows(data, key="id", order_by="at")


# -- IdempotencyLedger --------------------------------------------------------------------

LEDGER_OPTIONS = ("store", "expires_after", "claim_ttl", "collection", "owner", "retry")


@HOSTILE_SETTINGS
@given(option=st.sampled_from(LEDGER_OPTIONS), value=hostile)
def test_ledger_options(option: str, value: Any) -> None:
    """Any one hostile option: ConfigurationError, or a ledger that works."""
    store = MemoryStore(clock=FakeClock())
    options: dict[str, Any] = {"owner": "a", option: value}
    if option == "store":
        ledger = _typed_only(lambda: IdempotencyLedger(value, owner="a"))
    else:
        ledger = _typed_only(lambda: IdempotencyLedger(store, **options))
    if ledger is None:
        assert store.stats.writes == 0
        return
    claim = _no_write_if_refused(store, lambda: ledger.claim("msg-1", {"n": 1}))
    if isinstance(claim, Claimed):
        _no_write_if_refused(store, lambda: ledger.complete(claim, {"ok": True}))


@HOSTILE_SETTINGS
@given(key=hostile, payload=hostile, result=hostile)
def test_ledger_calls(key: Any, payload: Any, result: Any) -> None:
    """claim/complete/release with hostile keys, payloads and results: typed errors, no write."""
    store = MemoryStore(clock=FakeClock())
    ledger = IdempotencyLedger(store, owner="a")

    _no_write_if_refused(store, lambda: ledger.claim(key, payload))
    _no_write_if_refused(store, lambda: ledger.claim("msg-1", payload))
    _no_write_if_refused(store, lambda: ledger.release(key))
    _no_write_if_refused(store, lambda: ledger.complete(key, result))
    claim = ledger.claim("msg-2", {"n": 2})
    assert isinstance(claim, Claimed)
    _no_write_if_refused(store, lambda: ledger.complete(claim, result))
    forged = Claimed(key, key, 1, claim.expires_at, key)
    _no_write_if_refused(store, lambda: ledger.release(forged))
    _no_write_if_refused(store, lambda: ledger.complete(forged, None))


@pytest.mark.parametrize(
    "options",
    [
        {"claim_ttl": dt.timedelta(days=999_999_999), "expires_after": dt.timedelta.max},
        {"expires_after": dt.timedelta(days=999_999_999)},
        {"expires_after": dt.timedelta.max},
        {"claim_ttl": None},
        {"store": None},
        {"owner": "\ud800"},
        {"retry": "3 times"},
    ],
)
def test_item9_ledger_options_are_configuration_errors(options: dict[str, Any]) -> None:
    """claim_ttl=timedelta(days=999999999) raised OverflowError on the first claim."""
    store: Any = options.pop("store", MemoryStore(clock=FakeClock()))

    with pytest.raises(ConfigurationError):
        IdempotencyLedger(store, **options)


@pytest.mark.parametrize(
    "payload",
    [
        self_dict(),
        self_list(),
        nested(10_000, lambda v: [v]),
        nested(10_000, lambda v: {"k": v}),
    ],
)
def test_item9_recursive_payloads_are_invalid_input(payload: Any) -> None:
    """Self-referential or 10 000-deep payloads raised RecursionError; nothing is written."""
    store = MemoryStore(clock=FakeClock())
    ledger = IdempotencyLedger(store, owner="a")

    with pytest.raises(InvalidInputError):
        ledger.claim("msg-1", payload)
    assert store.stats.writes == 0


# -- the idempotent decorator -------------------------------------------------------------


@HOSTILE_SETTINGS
@given(
    argument=st.sampled_from(("ledger", "key_fn", "payload_fn", "handler")), value=hostile
)
def test_idempotent_arguments(argument: str, value: Any) -> None:
    """idempotent(ledger, key_fn, payload_fn)(handler) with one hostile argument."""
    store = MemoryStore(clock=FakeClock())
    args: dict[str, Any] = {
        "ledger": IdempotencyLedger(store, owner="a"),
        "key_fn": lambda message: message,
        "payload_fn": None,
        "handler": len,
        argument: value,
    }
    handler = args.pop("handler")

    wrapped = _typed_only(lambda: idempotent(**args)(handler))
    if wrapped is not None:
        _no_write_if_refused(store, lambda: wrapped("msg-1"))


@HOSTILE_SETTINGS
@given(key=hostile, payload=hostile, result=hostile)
def test_idempotent_with_hostile_keys_payloads_and_results(
    key: Any, payload: Any, result: Any
) -> None:
    """Keys and payloads computed from a message are checked before the claim is written."""
    store = MemoryStore(clock=FakeClock())
    ledger = IdempotencyLedger(store, owner="a")
    calls: list[Any] = []

    @idempotent(ledger, key_fn=lambda _m: key, payload_fn=lambda _m: payload)
    def refused(message: str) -> int:
        calls.append(message)
        return 1

    if _no_write_if_refused(store, lambda: refused("m")) is None:
        assert calls == []

    @idempotent(ledger, key_fn=lambda m: m)
    def returns_hostile(_message: str) -> Any:
        return result

    _typed_only(lambda: returns_hostile("msg-result"))
