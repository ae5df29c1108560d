"""
What ``IdempotencyLedger`` and ``AsyncIdempotencyLedger`` share: the entry
states, the options, and every decision taken inside the store's transaction.

The decisions are pure functions of a :class:`Snapshot` (the store may run
them more than once); the two ledgers only differ in how they call the store.
"""

from __future__ import annotations

import inspect
import itertools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeAlias

from .._identity import default_owner
from .._keys import encode_key, validate_id
from .._telemetry import counter
from .._validate import describe, duration_seconds
from ..errors import ConfigurationError, InvalidInputError, PayloadMismatchError
from ..retry import RetryPolicy
from ..stores._protocol import Outcome, Put, Snapshot
from ._hashing import payload_hash, to_json

__all__ = [
    "BaseLedger",
    "ClaimResult",
    "Claimed",
    "Completed",
    "InProgress",
    "count_claim",
    "is_async_store",
]

# A key is an id (a Pub/Sub message id, a request id), stored in its entry
# (a generous bound, far below the 1 MiB document);
# the owner is a label shown to operators.
_MAX_KEY_BYTES = 65_536
_MAX_OWNER_BYTES = 500
_IN_PROGRESS = "in_progress"
_COMPLETED = "completed"
_RELEASED = "released"


@dataclass(frozen=True, slots=True)
class Claimed:
    """
    The caller holds the key: do the work, then ``complete`` (or ``release``).

    Attributes:
        key: The idempotency key.
        claim_id: Identifies this claim; ``complete``/``release`` check it.
        attempt: 1 for the first claim of the key, +1 for each takeover of
            a released or abandoned claim.
        expires_at: When the claim lapses unless completed (store time).
        payload_hash: SHA-256 of the canonical JSON of the payload.

    .. versionadded:: 0.1.0
    """

    key: str
    claim_id: str
    attempt: int
    expires_at: datetime
    payload_hash: str


@dataclass(frozen=True, slots=True)
class InProgress:
    """
    Another claim on the key is live: try again after ``expires_at``.

    .. versionadded:: 0.1.0
    """

    key: str
    owner: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Completed:
    """
    The work was done already; ``result`` is what was recorded (as JSON gives it back).

    .. versionadded:: 0.1.0
    """

    key: str
    result: Any
    completed_at: datetime


ClaimResult: TypeAlias = Claimed | InProgress | Completed
"""What :meth:`IdempotencyLedger.claim` returns."""


class BaseLedger:
    """The options of a ledger, validated, and the transaction callbacks both forms run."""

    def __init__(
        self,
        *,
        expires_after: timedelta,
        claim_ttl: timedelta,
        collection: str,
        owner: str | None,
        retry: RetryPolicy | None,
    ) -> None:
        _check_config(
            expires_after=expires_after,
            claim_ttl=claim_ttl,
            collection=collection,
            owner=owner,
            retry=retry,
        )
        self.expires_after = expires_after
        self.claim_ttl = claim_ttl
        self.collection = collection
        self.owner = owner or default_owner()
        self.retry = retry or RetryPolicy(attempts=4, deadline=20.0)
        # Claim ids are "<random id of this object>.<n>": unique per call even
        # when several ledgers share an owner label (a copied config, a fixed
        # service name), so one ledger never mistakes another's claim for its own.
        self._id = uuid.uuid4().hex
        self._claims = itertools.count(1)

    def _document(self, key: str) -> str:
        return encode_key(_check_key(key))

    def _claim_decision(
        self, key: str, payload: Any
    ) -> tuple[str, Callable[[Snapshot], Outcome[ClaimResult]]]:
        """Check the arguments; the key and the callback that claims it."""
        key = _check_key(key)
        digest = payload_hash(payload)
        claim_id = f"{self._id}.{next(self._claims)}"

        def decide(snap: Snapshot) -> Outcome[ClaimResult]:
            data = self._live(snap)
            if data is None:
                return self._grant(key, snap, digest, claim_id, attempt=1)
            if data["payload_hash"] != digest:
                raise PayloadMismatchError(key, data["payload_hash"], digest)
            if data["state"] == _COMPLETED:
                return Outcome(_completed(key, data))
            if data["claim_id"] == claim_id:
                # Our own earlier attempt committed but its response was lost.
                return Outcome(_claimed(key, data))
            if data["state"] == _IN_PROGRESS and snap.now < data["lease_expires_at"]:
                return Outcome(InProgress(key, data["owner"], data["lease_expires_at"]))
            return self._grant(key, snap, digest, claim_id, attempt=data["attempt"] + 1)

        return key, decide

    def _complete_decision(
        self, key: str | Claimed, result: Any
    ) -> tuple[str, Callable[[Snapshot], Outcome[Completed]]]:
        """Check the arguments; the key and the callback that records the completion."""
        name, digest = _target(key)
        text = to_json(result)

        def decide(snap: Snapshot) -> Outcome[Completed]:
            data = self._live(snap)
            if data is None and digest is None:
                raise InvalidInputError(f"idempotency key {name!r} has no claim to complete")
            if data is not None and data["state"] == _COMPLETED:
                return Outcome(_completed(name, data))
            if data is not None and digest is not None and data["payload_hash"] != digest:
                # The key was forgotten and claimed again for another payload.
                raise PayloadMismatchError(name, data["payload_hash"], digest)
            entry = dict(data or {"attempt": 1, "owner": self.owner, "claim_id": ""})
            entry.update(
                key=name,
                state=_COMPLETED,
                payload_hash=entry.get("payload_hash", digest),
                result=text,
                completed_at=snap.now,
                forget_at=snap.now + self.expires_after,
            )
            entry.pop("lease_expires_at", None)
            return Outcome(_completed(name, entry), Put(entry))

        return name, decide

    def _release_decision(
        self, key: str | Claimed
    ) -> tuple[str, Callable[[Snapshot], Outcome[bool]]]:
        """Check the arguments; the key and the callback that releases the claim."""
        name, _ = _target(key)

        def mine(data: dict[str, Any]) -> bool:
            if isinstance(key, Claimed):
                return bool(data["claim_id"] == key.claim_id)
            return str(data["claim_id"]).partition(".")[0] == self._id

        def decide(snap: Snapshot) -> Outcome[bool]:
            data = self._live(snap)
            if data is None or data["state"] == _COMPLETED or not mine(data):
                return Outcome(False)
            if data["state"] == _RELEASED:
                return Outcome(True)  # a retry after a lost response
            entry = {**data, "state": _RELEASED, "lease_expires_at": snap.now}
            return Outcome(True, Put(entry))

        return name, decide

    def _live(self, snap: Snapshot) -> dict[str, Any] | None:
        """The entry, or ``None`` when absent or past its dedup window."""
        data = snap.data
        if data is None or snap.now >= data["forget_at"]:
            return None
        return data

    def _grant(
        self, key: str, snap: Snapshot, digest: str, claim_id: str, *, attempt: int
    ) -> Outcome[ClaimResult]:
        entry = {
            "key": key,
            "state": _IN_PROGRESS,
            "payload_hash": digest,
            "owner": self.owner,
            "claim_id": claim_id,
            "attempt": attempt,
            "claimed_at": snap.now,
            "lease_expires_at": snap.now + self.claim_ttl,
            "forget_at": snap.now + self.expires_after,
        }
        return Outcome(_claimed(key, entry), Put(entry))


def _check_config(
    *,
    expires_after: object,
    claim_ttl: object,
    collection: object,
    owner: object,
    retry: object,
) -> None:
    if _duration(expires_after, "expires_after") < _duration(claim_ttl, "claim_ttl"):
        raise ConfigurationError(
            f"expires_after must be at least claim_ttl, got {describe(expires_after)}"
        )
    try:
        validate_id(collection, "collection id")
    except InvalidInputError as exc:
        raise ConfigurationError(str(exc)) from exc
    if owner is not None:
        _check_text(owner, "owner", _MAX_OWNER_BYTES, ConfigurationError)
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ConfigurationError(f"retry must be a RetryPolicy, got {describe(retry)}")


def _duration(value: object, what: str) -> timedelta:
    if not isinstance(value, timedelta):
        raise ConfigurationError(f"{what} must be a timedelta, got {describe(value)}")
    # Bounded by MAX_DURATION, so that "store time + claim_ttl" never overflows.
    duration_seconds(value, what)
    return value


def _target(key: object) -> tuple[str, str | None]:
    """The key named by a plain key or a :class:`Claimed`, and the claim's payload hash."""
    if not isinstance(key, Claimed):
        return _check_key(key), None
    fields: tuple[object, ...] = (key.payload_hash, key.claim_id)
    if not all(isinstance(field, str) for field in fields):
        raise InvalidInputError(f"a malformed Claimed: {describe(key)}")
    return _check_key(key.key), key.payload_hash


def _check_key(key: object) -> str:
    return _check_text(key, "an idempotency key", _MAX_KEY_BYTES, InvalidInputError)


def _check_text(value: object, what: str, max_bytes: int, error: type[Exception]) -> str:
    if not isinstance(value, str) or not value:
        raise error(f"{what} must be a non-empty string, got {describe(value)}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise error(f"{what} is not valid UTF-8 (it holds a lone surrogate)") from exc
    if size > max_bytes:
        raise error(f"{what} is longer than {max_bytes} bytes")
    return value


def _claimed(key: str, data: dict[str, Any]) -> Claimed:
    return Claimed(
        key, data["claim_id"], data["attempt"], data["lease_expires_at"], data["payload_hash"]
    )


def _completed(key: str, data: dict[str, Any]) -> Completed:
    return Completed(key, json.loads(data["result"]), data["completed_at"])


def count_claim(result: ClaimResult) -> None:
    """Count a claim by its outcome (the ``dedup.claims`` metric)."""
    counter("dedup.claims", "Idempotency claims by outcome").add(
        1, {"outcome": type(result).__name__}
    )


def is_async_store(store: object) -> bool:
    """Whether any of ``store``'s operations is a coroutine function (an async store)."""
    return any(
        inspect.iscoroutinefunction(getattr(store, op, None)) for op in ("get", "transact")
    )
