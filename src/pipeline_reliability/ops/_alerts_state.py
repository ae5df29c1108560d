"""
What ``watch`` remembers in the store, so a persisting alert is sent once and
a resolved one is reported once.

Two kinds of documents in the alert collection, each written only when it
changes:

- one per alert id: its last known state (``firing`` or ``resolved``), when
  it started, when it was sent and when it resolved;
- one per *scope* (a phase and date, or the breakers): the ids firing there
  at the last run that evaluated the scope, so an alert that is no longer
  found there is known to have resolved (the store has no queries).

A scope not evaluated by a run (a date that left the window) keeps its
alerts as they were: nothing resolves by going out of view.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..stores._protocol import Outcome, Put, Snapshot, StateStore
from ._alerts import Alert

__all__ = ["FIRING", "RESOLVED", "Transitions", "plan", "scope_key", "commit"]

FIRING, RESOLVED = "firing", "resolved"
_MAX_IDS = 1000  # alert ids one scope document keeps (a Firestore document is <= 1 MiB)


def scope_key(phase: str | None, date: str | None) -> str:
    """The document id of a scope's index."""
    return f"scope_{phase or '_'}_{date or '_'}"


@dataclass(frozen=True, slots=True)
class Transitions:
    """What changed since the last run: alerts to send as new, and as resolved."""

    new: tuple[Alert, ...]
    resolved: tuple[Alert, ...]
    #: scope key -> ids firing there now (written when it differs from ``before``).
    scopes: Mapping[str, frozenset[str]]
    before: Mapping[str, frozenset[str]]


def _ids(snap: Snapshot) -> frozenset[str]:
    found = (snap.data or {}).get("firing")
    return frozenset(i for i in found if isinstance(i, str)) if isinstance(found, list) else \
        frozenset()


def _alert_of(data: Mapping[str, Any]) -> Alert | None:
    try:
        since = data.get("since")
        return Alert(
            str(data["rule"]), str(data["severity"]), data.get("phase"), data.get("date"),
            str(data.get("subject", "")), str(data.get("message", "")),
            str(data.get("action", "")), processor=data.get("processor"),
            since=since if isinstance(since, datetime) else None,
        )
    except KeyError:
        return None  # not a document this module wrote: nothing to report


def plan(
    store: StateStore, collection: str, found: Mapping[str, Sequence[Alert]]
) -> Transitions:
    """
    Compare the alerts ``found`` per scope with what the store remembers.

    Reads one document per scope, and one per alert that may have changed
    (new ones, and those that left their scope). Writes nothing.
    """
    new: list[Alert] = []
    resolved: list[Alert] = []
    scopes: dict[str, frozenset[str]] = {}
    before: dict[str, frozenset[str]] = {}
    for key, alerts in found.items():
        firing = frozenset(a.id for a in alerts)
        scopes[key] = firing
        before[key] = previous = _ids(store.get(collection, key))
        for alert in alerts:
            if alert.id not in previous:
                # Maybe firing already (an earlier run stopped before its scope
                # was written): the alert's own document decides.
                data = store.get(collection, alert.id).data or {}
                if data.get("state") != FIRING:
                    new.append(alert)
        for gone in sorted(previous - firing):
            data = store.get(collection, gone).data or {}
            old = _alert_of(data)
            if data.get("state") == FIRING and old is not None:
                resolved.append(old)
    return Transitions(tuple(new), tuple(resolved), scopes, before)


def commit(
    store: StateStore, collection: str, changes: Transitions, now: datetime
) -> None:
    """
    Remember ``changes``: each new alert firing, each resolved one resolved,
    each scope's firing set. Only documents that change are written.
    """
    for alert in changes.new:
        store.transact(collection, alert.id, _set_state(alert, FIRING, now))
    for alert in changes.resolved:
        store.transact(collection, alert.id, _set_state(alert, RESOLVED, now))
    for key, firing in changes.scopes.items():
        if firing != changes.before.get(key):
            store.transact(collection, key, _set_scope(sorted(firing)[:_MAX_IDS], now))


def _set_state(alert: Alert, state: str, now: datetime) -> Callable[[Snapshot], Outcome[bool]]:
    def decide(snap: Snapshot) -> Outcome[bool]:
        if (snap.data or {}).get("state") == state:
            return Outcome(False)  # another run recorded it already
        data = {**alert.to_dict(), "since": alert.since, "state": state, "changed_at": now}
        if state == FIRING:
            data["sent_at"] = now
        else:
            data["sent_at"] = (snap.data or {}).get("sent_at")
            data["resolved_at"] = now
        return Outcome(True, Put(data))

    return decide


def _set_scope(firing: list[str], now: datetime) -> Callable[[Snapshot], Outcome[bool]]:
    def decide(snap: Snapshot) -> Outcome[bool]:
        if sorted(_ids(snap)) == firing:
            return Outcome(False)
        return Outcome(True, Put({"firing": firing, "changed_at": now}))

    return decide
