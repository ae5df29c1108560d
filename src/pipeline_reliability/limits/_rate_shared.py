"""
The shared budget's document and its one decision: the heartbeat.

One document per limiter name holds the live members (instance id, lease
expiry on the store's time, and the fraction of the fleet rate each one
admits until its next heartbeat, with that rate for operators) and the last
throttle an instance published. An instance runs :func:`heartbeat` in one
``transact`` at most once per ``share`` period, and only while it is being
called: it renews its own lease, drops expired ones,
publishes its own pending throttle, learns whether another one was throttled,
and takes its share of the fleet rate.

Its share is ``fleet * min(1 / n, 1 - the others' fractions)``: the others'
fractions are what they wrote at their own last heartbeat, and none of them
admits more than that fraction of the fleet rate until its next one. So a
newcomer never takes what the others still use (it admits ``min_rate / n``
until they have made room, at most two periods), and the members' rates
always add up to at most the fleet rate, plus those ``min_rate / n`` floors.
Fractions, not rates: when the fleet rate falls after a throttle, every
member's share falls with it at once; with absolute rates, the member whose
heartbeat came last would find the others' stale, higher rates and be
squeezed to its floor for a period (the fleet then admitted half of what the
API allowed).

Store operations per instance per ``share`` period: exactly one transaction
(one read and one write) while the limiter is used, none while it is idle.
No call ever writes per call.
"""

from __future__ import annotations

import math
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
        members: Live instances, this one included.
        joined: Whether this instance's lease was written (``False``: the
            document already holds ``MAX_MEMBERS`` other live instances).
        rate: This instance's share: the most it may admit until its next heartbeat.
        throttled_at: Store time of the latest throttle published by another
            instance (``None``: none, or it is older than two ``share`` periods).
        now: The store's time of the heartbeat.
    """

    members: int
    joined: bool
    rate: float
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
        and type(m.get("fraction")) is float and 0 <= m["fraction"] <= 1
    ]


def _throttle(data: dict[str, Any]) -> tuple[datetime, str] | None:
    found = data.get("throttle")
    if isinstance(found, dict):
        at, by = found.get("at"), found.get("by")
        if isinstance(at, datetime) and isinstance(by, str):
            return at, by
    return None


def heartbeat(
    snapshot: Snapshot,
    *,
    name: str,
    me: str,
    share: float,
    lease: float,
    publish: bool,
    fleet_rate: float,
    min_rate: float,
) -> Outcome[Membership]:
    """
    Renew ``me``'s lease in the shared-budget document and take its share.

    ``fleet_rate`` is the rate ``me`` believes the fleet may send (its AIMD
    rate); ``publish`` records a throttle seen by ``me`` at the store's time,
    so that the other members decrease too. Expired members are dropped in the
    same write. Always writes one document, unless the document is full.
    """
    now = snapshot.now
    data = snapshot.data or {}
    others = _live(data, now, me)
    latest = _throttle(data)
    heard = None
    if latest is not None and latest[1] != me and now - latest[0] <= timedelta(seconds=2 * share):
        heard = latest[0]
    count = len(others) + 1
    floor = min_rate / count
    if len(others) >= MAX_MEMBERS:
        return Outcome(Membership(count, False, floor, heard, now))
    used = math.fsum(m["fraction"] for m in others)
    fraction = max(0.0, min(1 / count, 1 - used))
    rate = max(floor, fleet_rate * fraction)
    mine = {
        "id": me, "expires": now + timedelta(seconds=lease), "fraction": fraction, "rate": rate,
    }  # fmt: skip
    members = [*others, mine]
    doc: dict[str, Any] = {"name": name, "members": members}
    if publish:
        doc["throttle"] = {"at": now, "by": me}
    elif latest is not None:
        doc["throttle"] = {"at": latest[0], "by": latest[1]}
    return Outcome(Membership(count, True, rate, heard, now), Put(doc))
