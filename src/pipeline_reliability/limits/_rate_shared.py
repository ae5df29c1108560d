"""
The shared budget's document and its one decision: the heartbeat.

One document per limiter name holds the live members (instance id and lease
expiry, on the store's time) and the last throttle an instance published. An
instance runs :func:`heartbeat` in one ``transact`` at most once per ``share``
period, and only while it is being called: it renews its own lease, drops
expired ones, publishes its own pending throttle, and learns how many
instances share the fleet rate and whether another one was throttled.

Store operations per instance per ``share`` period: exactly one transaction
(one read and one write) while the limiter is used, none while it is idle.
No call ever writes per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..stores._protocol import Outcome, Put, Snapshot
from ._rate_config import MAX_MEMBERS

__all__ = ["Membership", "heartbeat"]


@dataclass(frozen=True, slots=True)
class Membership:
    """
    What a heartbeat learnt.

    Attributes:
        members: Live instances, this one included (0 when it could not join).
        joined: Whether this instance's lease was written (``False``: the
            document already holds ``MAX_MEMBERS`` other live instances).
        throttled_at: Store time of the latest throttle published by another
            instance (``None``: none, or it is older than two ``share`` periods).
        now: The store's time of the heartbeat.
    """

    members: int
    joined: bool
    throttled_at: datetime | None
    now: datetime


def _live(data: dict[str, Any], now: datetime, me: str) -> list[dict[str, Any]]:
    # A document written by someone else may hold anything: skip what is not ours.
    members = data.get("members")
    if not isinstance(members, list):
        return []
    return [
        m for m in members
        if isinstance(m, dict) and isinstance(m.get("id"), str) and m["id"] != me
        and isinstance(m.get("expires"), datetime) and m["expires"] > now
    ]


def _throttle(data: dict[str, Any]) -> tuple[datetime, str] | None:
    found = data.get("throttle")
    if isinstance(found, dict):
        at, by = found.get("at"), found.get("by")
        if isinstance(at, datetime) and isinstance(by, str):
            return at, by
    return None


def heartbeat(
    snapshot: Snapshot, *, name: str, me: str, share: float, lease: float, publish: bool
) -> Outcome[Membership]:
    """
    Renew ``me``'s lease in the shared-budget document and read the fleet.

    ``publish`` records a throttle seen by ``me`` at the store's time, so that
    the other members decrease too. Expired members are dropped in the same
    write. Always writes one document, unless the document is full.
    """
    now = snapshot.now
    data = snapshot.data or {}
    others = _live(data, now, me)
    latest = _throttle(data)
    heard = None
    if latest is not None and latest[1] != me and now - latest[0] <= timedelta(seconds=2 * share):
        heard = latest[0]
    if len(others) >= MAX_MEMBERS:
        return Outcome(Membership(len(others), False, heard, now))
    members = [*others, {"id": me, "expires": now + timedelta(seconds=lease)}]
    doc: dict[str, Any] = {"name": name, "members": members}
    if publish:
        doc["throttle"] = {"at": now, "by": me}
    elif latest is not None:
        doc["throttle"] = {"at": latest[0], "by": latest[1]}
    return Outcome(Membership(len(members), True, heard, now), Put(doc))
