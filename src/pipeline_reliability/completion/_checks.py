"""Up-front checks of the tracker's options and of the values callers hand back to it."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from datetime import datetime

from ..errors import ConfigurationError, InvalidInputError
from ..retry import RetryPolicy
from ..stores._protocol import AsyncStateStore, StateStore
from ._events import TriggerClaim
from ._ledger import CompletionLedger, ExecutionLog
from ._metadata import metadata_collection
from ._spec import PhaseSpec, normalise_date, show

__all__ = [
    "MAX_OWNER_CHARS",
    "check_claim",
    "check_options",
    "check_owner",
    "check_phases",
    "check_publish",
]

#: Longest ``owner``: it is stored in every trigger claim (bounded document).
MAX_OWNER_CHARS = 256


def check_options(
    store: object,
    phases: object,
    *,
    ledger: object,
    clock: object,
    execution_log: object,
    retry: object,
    asynchronous: bool = False,
) -> None:
    """Refuse options of the wrong kind up front (not on first use, as a raw error)."""
    # Both protocols have the same method names, so isinstance alone cannot
    # tell a sync store from an async one: the kind of ``transact`` does.
    kind, name = (AsyncStateStore, "an AsyncStateStore") if asynchronous else (
        StateStore, "a StateStore"
    )
    if not isinstance(store, kind) or asynchronous != inspect.iscoroutinefunction(
        getattr(store, "transact", None)
    ):
        raise ConfigurationError(f"store must be {name}, got {show(store)}")
    if isinstance(phases, str | bytes) or not isinstance(phases, Iterable):
        raise ConfigurationError(f"phases must be a collection of PhaseSpec, got {show(phases)}")
    if ledger is not None and not isinstance(ledger, CompletionLedger):
        raise ConfigurationError(f"ledger must be a CompletionLedger, got {show(ledger)}")
    if execution_log is not None and not isinstance(execution_log, ExecutionLog):
        raise ConfigurationError(
            f"execution_log must be an ExecutionLog, got {show(execution_log)}"
        )
    if clock is not None and not callable(getattr(clock, "now", None)):
        raise ConfigurationError(f"clock must have a now() method, got {show(clock)}")
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ConfigurationError(f"retry must be a RetryPolicy, got {show(retry)}")


def check_phases(phases: Iterable[object]) -> dict[str, PhaseSpec]:
    """The configured phases by name; refuse duplicates and collection clashes."""
    specs: dict[str, PhaseSpec] = {}
    collections: set[str] = set()
    for spec in phases:
        if not isinstance(spec, PhaseSpec):
            raise ConfigurationError(f"phases must be PhaseSpec objects, got {show(spec)}")
        if spec.name in specs or spec.collection in collections:
            raise ConfigurationError(
                f"phase {spec.name!r} or collection {spec.collection!r} is configured twice"
            )
        specs[spec.name] = spec
        collections.add(spec.collection)
    if not specs:
        raise ConfigurationError("at least one PhaseSpec is required")
    clash = sorted(collections & {metadata_collection(s) for s in specs.values()})
    if clash:
        raise ConfigurationError(f"collection {clash[0]!r} is another phase's metadata")
    return specs


def check_owner(owner: object) -> None:
    """Refuse an ``owner`` that is not a short non-empty string (``None``: the default)."""
    if owner is not None and not (
        isinstance(owner, str) and owner and len(owner) <= MAX_OWNER_CHARS
    ):
        raise ConfigurationError(
            f"owner must be a non-empty string of at most {MAX_OWNER_CHARS} characters, "
            f"got {show(owner)}"
        )


def check_publish(publish: object) -> None:
    """Refuse a ``publish`` that is not callable before anything is written."""
    if not callable(publish):
        raise InvalidInputError(f"publish must be callable, got {show(publish)}")


_CLAIM_TEXT = ("phase", "date", "trigger_id", "owner", "reason")


def check_claim(claim: object) -> TriggerClaim:
    """Return ``claim`` if it is a well-formed :class:`TriggerClaim`, else raise."""
    if not isinstance(claim, TriggerClaim):
        raise InvalidInputError(f"claim must be a TriggerClaim, got {show(claim)}")
    # A claim is a plain dataclass: anything can be put in its fields.
    fields: dict[str, object] = {f: getattr(claim, f) for f in _CLAIM_TEXT}
    day, attempt, claimed_at = (getattr(claim, f) for f in ("date", "attempt", "claimed_at"))
    ok = (
        all(isinstance(v, str) for v in fields.values())
        and normalise_date(day) == day
        and isinstance(attempt, int)
        and not isinstance(attempt, bool)
        and isinstance(claimed_at, datetime)
        and claimed_at.utcoffset() is not None
    )
    if not ok:
        raise InvalidInputError(f"not a claim the tracker issued: {show(claim, 200)}")
    return claim
