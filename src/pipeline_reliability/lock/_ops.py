"""Operator views and actions on locks (the CLI's ``lock show`` and ``lock break``)."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass

from .._keys import encode_key
from .._telemetry import span
from ..errors import InvalidInputError
from ..stores import Snapshot, StateStore
from ._options import (
    DEFAULT_COLLECTION,
    check_collection,
    check_store,
    check_token,
    parse_date,
    parse_name,
)
from ._record import Record, decide_break

__all__ = ["LockInfo", "break_lock", "inspect_lock", "lock_info"]

logger = logging.getLogger("pipeline_reliability.lock")


@dataclass(frozen=True, slots=True)
class LockInfo:
    """
    What the store says about a lock, for operators (``pipeline-reliability lock show``).

    Attributes:
        name: The lock's name.
        date: The lock's date, ``YYYY-MM-DD``.
        holder: Owner id of the recorded lease (``None`` when released or never taken).
        token: The newest fencing token issued (``0`` when never taken); the
            token of the current lease when ``held``.
        acquired_at: When the recorded lease was granted (store time).
        expires_at: When the recorded lease ends unless renewed (store time).
        held: Whether a lease is live at ``store_time``.
        store_time: The store's time when it was read.
    """

    name: str
    date: str
    holder: str | None
    token: int
    acquired_at: dt.datetime | None
    expires_at: dt.datetime | None
    held: bool
    store_time: dt.datetime


def inspect_lock(
    store: StateStore,
    name: str,
    date: dt.date | str,
    *,
    collection: str = DEFAULT_COLLECTION,
) -> LockInfo:
    """Read a lock's state (see :meth:`DateLock.inspect`)."""
    store = check_store(store, InvalidInputError)
    name, iso = parse_name(name), parse_date(date)
    snap = store.get(check_collection(collection, InvalidInputError), encode_key(name, iso))
    return lock_info(name, iso, snap)


def lock_info(name: str, iso: str, snap: Snapshot) -> LockInfo:
    """What an operator sees of a lock, from a read of its document (pure)."""
    rec = Record.parse(snap)
    return LockInfo(
        name=name,
        date=iso,
        holder=rec.holder,
        token=rec.token,
        acquired_at=rec.acquired_at if rec.holder is not None else None,
        expires_at=rec.expires_at,
        held=rec.live(snap.now),
        store_time=snap.now,
    )


def break_lock(
    store: StateStore,
    name: str,
    date: dt.date | str,
    *,
    token: int | None = None,
    collection: str = DEFAULT_COLLECTION,
) -> int | None:
    """
    Clear a lock's holder, as an operator (``pipeline-reliability lock break``).

    The token counter is kept, so the next acquirer gets a higher token than
    the broken lease, and writers that check tokens refuse the broken
    holder's late writes once the next holder has written. The broken holder
    learns of it at its next renew, ``ensure_held`` or release
    (``LockLostError``).

    Args:
        store: The lock store.
        name: The lock's name.
        date: The lock's date.
        token: Break only if the recorded lease has this token (what
            ``DateLock.inspect`` showed), so that a lease taken since is
            left alone.
        collection: The collection of lock documents.

    Returns:
        The token of the lease that was cleared (live or already expired),
        or ``None`` when no lease was recorded (or ``token`` did not match).

    Raises:
        InvalidInputError: ``store``, ``name``, ``date``, ``token`` or
            ``collection`` is invalid; nothing was written.
        StoreUnavailableError: the store failed; nothing is known to have changed.
    """
    store = check_store(store, InvalidInputError)
    name, iso = parse_name(name), parse_date(date)
    token = check_token(token, "token")
    where = check_collection(collection, InvalidInputError)
    decide = functools.partial(decide_break, token=token)
    with span("lock", "break", {"lock.name": name, "lock.date": iso, "lock.token": token}):
        broken: int | None = store.transact(where, encode_key(name, iso), decide)
    if broken is not None:
        logger.warning("lock %s/%s broken by an operator: lease %d cleared", name, iso, broken)
    return broken
