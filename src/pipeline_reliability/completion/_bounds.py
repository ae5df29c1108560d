"""
The size bound of a (phase, date) document (issue 10, item 2).

Firestore refuses a document over 1 MiB. The tracker keeps every part of the
date's document bounded (see ``_doc``), so its size has an upper bound that
depends only on the number of expected processors ``n``::

    size <= FIXED + n * PER_EXPECTED        (bytes, Firestore's storage-size rules)

:func:`max_doc_bytes` computes it from the same constants the code enforces,
and :func:`firestore_size` measures a real document by Firestore's rules, so
tests can compare the two. With ``PhaseSpec``'s limit of ``MAX_EXPECTED``
processors the bound stays below :data:`FIRESTORE_MAX_DOC_BYTES`.

Firestore's rules (https://firebase.google.com/docs/firestore/storage-size):
a string is its UTF-8 bytes + 1; an integer, float or timestamp 8; a bool or
null 1; a map the sum of its keys (bytes + 1) and values; an array the sum of
its values; a document 32 + its name + its fields, its name being the bytes
of each path segment + 1, plus 16.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ._checks import MAX_OWNER_CHARS
from ._claims import MAX_AUDIT, MAX_AUDIT_TEXT
from ._doc import (
    INLINE_METADATA_BYTES,
    MAX_EXECUTIONS,
    MAX_IGNORED,
    MAX_IGNORED_EXECUTIONS,
    MAX_MESSAGES,
    MAX_OPS,
    MAX_RING_KEY_BYTES,
)
from ._gates import MAX_REASON_CHARS
from ._spec import MAX_ID_CHARS

__all__ = ["FIRESTORE_MAX_DOC_BYTES", "firestore_size", "max_doc_bytes"]

FIRESTORE_MAX_DOC_BYTES = 1_048_576
_NUM = 8  # an integer, float or timestamp
_NAME = 128 + 1  # a phase/processor/status name: at most 128 ASCII characters
_ID = MAX_ID_CHARS * 4 + 1  # an execution/message/correlation id: 512 characters, 4 bytes each
_RING = MAX_RING_KEY_BYTES + 1  # an id as kept in a ring
_DATE = 10 + 1
_COLLECTION = 1500 + 1  # a collection id (validate_id's limit)
_ERROR = 1000 * 4 + 1  # a trigger's last_error (MAX_ERROR_CHARS characters)
_REASON = len("nothing_scheduled") + 1
_STATE = len("confirmed") + 1
_TEXT = MAX_AUDIT_TEXT * 4 + 1  # an audit entry's "by" or "reason"


def _field(name: str, value: int) -> int:
    return len(name) + 1 + value


def _record_bytes() -> int:
    """The largest record of one expected processor, with its map key."""
    ref = _field("key", _DATE + 128 + 32 + 2) + _field("digest", 64 + 1) + _field("bytes", _NUM)
    return _NAME + sum(
        (
            _field("status", _NAME),
            _field("execution_id", _ID),
            _field("executions", MAX_EXECUTIONS * _RING),
            _field("message_id", _ID),
            _field("record_count", _NUM),
            _field("correlation_id", _ID),
            _field("metadata", INLINE_METADATA_BYTES + 1),
            _field("metadata_ref", ref),
            _field("completed_at", _NUM),
            _field("reported_at", _NUM),
            _field("recorded_at", _NUM),
            _field("runs", _NUM),
        )
    )


def _ignored_bytes() -> int:
    """The largest record of one ignored (unknown) name, with its map key."""
    return _NAME + sum(
        (
            _field("status", _NAME),
            _field("execution_id", _ID),
            _field("executions", MAX_IGNORED_EXECUTIONS * _RING),
            _field("recorded_at", _NUM),
            _field("deliveries", _NUM),
        )
    )


def _trigger_fixed() -> int:
    return sum(
        (
            _field("state", _STATE),
            _field("trigger_id", _NAME + _DATE),
            _field("owner", MAX_OWNER_CHARS * 4 + 1),
            _field("attempt", _NUM),
            _field("reason", _REASON),
            _field("claimed_at", _NUM),
            _field("first_claimed_at", _NUM),
            _field("lease_expires_at", _NUM),
            _field("completed", 0),
            _field("missing", 0),
            _field("correlation_id", _ID),
            _field("confirmed_at", _NUM),
            _field("released_at", _NUM),
            _field("last_error", _ERROR),
            _field("failures", _NUM),
            _field("rearms", _NUM),
            _field("skipped_at", _NUM),
        )
    )


def _gate_bytes() -> int:
    return sum(
        (
            _field("state", len("closed") + 1),
            _field("reason", MAX_REASON_CHARS * 4 + 1),
            _field("since", _NUM),
        )
    )


def _audit_entry_bytes() -> int:
    """The largest audit entry (``rearm_trigger`` or ``set_expected``)."""
    return sum(
        (
            _field("op", len("rearm_trigger") + 1),
            _field("by", _TEXT),
            _field("at", _NUM),
            _field("reason", _TEXT),
            _field("attempt", _NUM),
            _field("previous", _STATE),
            _field("added", _NUM),
            _field("removed", _NUM),
        )
    )


def _meta_fixed() -> int:
    return sum(
        (
            _field("first_completion_at", _NUM),
            _field("updated_at", _NUM),
            _field("count", _NUM),
            _field("completed", 0),
            _field("deadline_exceeded_at", _NUM),
            _field("missing_at_deadline", 0),
            _field("ignored_dropped", _NUM),
        )
    )


#: Bytes that do not depend on the number of expected processors.
FIXED = (
    32
    + _COLLECTION
    + _DATE
    + 16
    + _field("schema", _NUM)
    + _field("phase", _NAME)
    + _field("date", _DATE)
    + _field("processors", 0)
    + _field("ignored", MAX_IGNORED * _ignored_bytes())
    + _field("messages", MAX_MESSAGES * _RING)
    + _field("ops", MAX_OPS * (16 + 1))
    + _field("trigger", _trigger_fixed())
    + _field("meta", _meta_fixed())
    + _field("expected", 0)
    + _field("gate", _gate_bytes())
    + _field("audit", MAX_AUDIT * _audit_entry_bytes())
)
#: Bytes per expected processor: its record, and its name in the trigger's
#: completed/missing lists, meta's completed/missing_at_deadline lists and
#: the date's fixed expected set.
PER_EXPECTED = _record_bytes() + 5 * _NAME


def max_doc_bytes(expected: int) -> int:
    """The most bytes a date's document can take with ``expected`` processors."""
    return FIXED + expected * PER_EXPECTED


def firestore_size(value: Any) -> int:
    """The storage size of a field value by Firestore's rules (a document's fields: a map)."""
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int | float | datetime):
        return _NUM
    if isinstance(value, str):
        return len(value.encode("utf-8")) + 1
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, Mapping):
        return sum(len(str(k).encode("utf-8")) + 1 + firestore_size(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return sum(firestore_size(v) for v in value)
    raise TypeError(f"not a Firestore value: {type(value).__name__}")
