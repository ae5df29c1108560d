"""
``watch``: each rule produces exactly its alert from a constructed state (on
MemoryStore and on the Firestore emulator), the healthy state produces none,
a persisting alert is not sent again and a resolved one is reported once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pipeline_reliability import MemoryStore, StateStore
from pipeline_reliability.breaker import CircuitBreaker
from pipeline_reliability.completion import CompletionTracker, LedgerRow, MemoryLedger, PhaseSpec
from pipeline_reliability.lock import DateLock
from pipeline_reliability.ops import PhaseRules, WatchConfig, WatchReport, watch
from pipeline_reliability.ops._rules import DEGRADED, LEDGER
from pipeline_reliability.testing import FakeClock

US = timedelta(microseconds=1)


def _specs() -> list[PhaseSpec]:
    return [PhaseSpec("phase3", {"a", "b"}, next_phase="phase4"), PhaseSpec("phase4", {"c"})]


def _tracker(store: StateStore) -> CompletionTracker:
    return CompletionTracker(store, _specs(), owner="test")


def _base(store: StateStore) -> tuple[datetime, str]:
    """The store's time now, and that day (UTC) as the date under watch."""
    now = store.get("probe", "now").now
    return now, now.date().isoformat()


def _rules(found: WatchReport) -> list[tuple[str, str | None, str | None, str]]:
    return [(a.rule, a.phase, a.date, a.subject) for a in found.alerts]


def _watch(store: StateStore, tracker: CompletionTracker, day: str, now: datetime,
           **kwargs: Any) -> WatchReport:
    return watch(store, tracker, kwargs.pop("config", None), dates=[day], now=now, **kwargs)


def _publish(event: object) -> None:
    return None


# -- each rule fires, exactly, and is quiet just before its threshold ------------------------


def test_item4_handoff_stalled_fires_exactly(store: StateStore) -> None:
    """Phase 3 confirmed, no phase 4 completion within the hand-off time: one alert."""
    tracker = _tracker(store)
    _, day = _base(store)
    for name in ("a", "b"):
        tracker.record_and_trigger("phase3", day, name, execution_id=f"r-{name}",
                                   publish=_publish)
    status = tracker.status("phase3", day)
    assert status.triggered
    assert status.lease_expires_at is not None
    claimed = status.lease_expires_at - timedelta(minutes=5)
    due = claimed + timedelta(minutes=30)

    assert _rules(_watch(store, tracker, day, due - US, remember=False)) == []
    found = _watch(store, tracker, day, due)

    assert _rules(found) == [("handoff_stalled", "phase4", day, "")]
    assert found.alerts[0].severity == "critical"
    tracker.record_and_trigger("phase4", day, "c", execution_id="r-c", publish=_publish)
    assert _rules(_watch(store, tracker, day, due)) == []


def test_item4_phase_late_fires_exactly(store: StateStore) -> None:
    """A processor missing at the phase's expected-by time (its deadline): one alert."""
    tracker = _tracker(store)
    _, day = _base(store)
    tracker.record_completion("phase3", day, "a", execution_id="r-a")
    due = tracker.status("phase3", day).deadline_at
    assert due is not None
    rules = WatchConfig(phases={"phase4": PhaseRules(disabled=frozenset({"phase_late"}))})

    assert _rules(_watch(store, tracker, day, due - US, config=rules, remember=False)) == []
    found = _watch(store, tracker, day, due, config=rules)

    assert _rules(found) == [("phase_late", "phase3", day, "")]
    assert found.alerts[0].processor == "b"
    assert "missing b" in found.alerts[0].message


def test_item4_claim_stuck_fires_exactly(store: StateStore) -> None:
    """A released claim nobody took over within the take-over time: one alert."""
    tracker = _tracker(store)
    _, day = _base(store)
    tracker.record_completion("phase3", day, "a", execution_id="r-a")
    claim = tracker.record_completion("phase3", day, "b", execution_id="r-b").trigger
    assert claim is not None
    tracker.release_trigger(claim, "publish failed")
    due = claim.lease_expires_at + timedelta(minutes=10)

    assert _rules(_watch(store, tracker, day, due - US, remember=False)) == []
    found = _watch(store, tracker, day, due)

    assert _rules(found) == [("claim_stuck", "phase3", day, "")]
    assert "released" in found.alerts[0].message


def test_item4_claim_expired_not_taken_over_fires(store: StateStore) -> None:
    """A claim whose holder died (never confirmed nor released) fires after its lease end."""
    tracker = _tracker(store)
    _, day = _base(store)
    tracker.record_completion("phase3", day, "a", execution_id="r-a")
    claim = tracker.record_completion("phase3", day, "b", execution_id="r-b").trigger
    assert claim is not None
    found = _watch(store, tracker, day, claim.lease_expires_at + timedelta(minutes=10))
    assert _rules(found) == [("claim_stuck", "phase3", day, "")]


def _degraded_row(day: str, at: datetime, processor: str = "a") -> LedgerRow:
    return LedgerRow("phase3", day, processor, "r-ledger", "success", at, at, primary_ok=False)


def test_item4_ledger_unreplayed_fires_exactly(store: StateStore) -> None:
    """A completion waiting in the fallback ledger longer than the limit: one alert."""
    tracker = _tracker(store)
    base, day = _base(store)
    ledger = MemoryLedger([_degraded_row(day, base)])
    config = WatchConfig(phases={p: PhaseRules(disabled=frozenset({DEGRADED, "phase_late"}))
                                 for p in ("phase3", "phase4")})
    due = base + timedelta(minutes=30)

    assert _rules(_watch(store, tracker, day, due - US, config=config, ledger=ledger,
                         remember=False)) == []
    found = _watch(store, tracker, day, due, config=config, ledger=ledger)

    assert _rules(found) == [("ledger_unreplayed", "phase3", day, "a")]
    replaying = CompletionTracker(store, _specs(), ledger=ledger, owner="replay")
    replaying.replay_ledger("phase3", [day])
    after = _watch(store, tracker, day, due, config=config, ledger=ledger)
    assert _rules(after) == []
    assert [a.rule for a in after.resolved] == ["ledger_unreplayed"]


def test_item4_degraded_completion_fires_exactly(store: StateStore) -> None:
    """A completion of the window that went to the fallback ledger: one alert."""
    tracker = _tracker(store)
    base, day = _base(store)
    ledger = MemoryLedger([_degraded_row(day, base)])
    config = WatchConfig(phases={p: PhaseRules(disabled=frozenset({LEDGER, "phase_late"}))
                                 for p in ("phase3", "phase4")})

    found = _watch(store, tracker, day, base, config=config, ledger=ledger)

    assert _rules(found) == [("degraded_completion", "phase3", day, "a")]
    mirrored = MemoryLedger([LedgerRow("phase3", day, "a", "r", "success", base, base, True)])
    assert _rules(_watch(store, tracker, day, base, config=config, ledger=mirrored)) == []


def test_item4_ignored_completion_fires_exactly(store: StateStore) -> None:
    """An unknown processor name (a typo in a deployment) reported: one alert naming it."""
    tracker = _tracker(store)
    base, day = _base(store)
    tracker.record_completion("phase3", day, "a_typo", execution_id="r-x")

    found = _watch(store, tracker, day, base)

    assert _rules(found) == [("ignored_completion", "phase3", day, "a_typo")]
    assert found.alerts[0].processor == "a_typo"


def test_item4_breaker_open_fires_exactly(store: StateStore) -> None:
    """A shared breaker open longer than the limit: one alert."""
    tracker = _tracker(store)
    _, day = _base(store)
    breaker = CircuitBreaker("bigquery", store, instance_id="ops-test")
    breaker.force_open()
    opened = breaker.status(refresh=True).opened_at
    assert opened is not None
    config = WatchConfig(breakers=("bigquery", "never-used"),
                         breaker_open=timedelta(minutes=15))
    due = opened + timedelta(minutes=15)

    assert _rules(_watch(store, tracker, day, due - US, config=config, remember=False)) == []
    found = _watch(store, tracker, day, due, config=config)

    assert _rules(found) == [("breaker_open", None, None, "bigquery")]


def test_item4_lock_overdue_fires_exactly(store: StateStore) -> None:
    """A date lock still held past its lease (its holder died): one alert."""
    tracker = _tracker(store)
    _, day = _base(store)
    lease = DateLock(store, "ingest", day, ttl=timedelta(seconds=30), owner="worker-1").acquire()
    config = WatchConfig(phases={"phase3": PhaseRules(locks=("ingest",))})
    assert lease.expires_at is not None
    due = lease.expires_at + timedelta(minutes=1)

    assert _rules(_watch(store, tracker, day, due - US, config=config, remember=False)) == []
    found = _watch(store, tracker, day, due, config=config)

    assert _rules(found) == [("lock_overdue", "phase3", day, "ingest")]
    assert "worker-1" in found.alerts[0].message


# -- the healthy state ------------------------------------------------------------------------


def _healthy(store: StateStore) -> tuple[CompletionTracker, str, datetime]:
    tracker = _tracker(store)
    base, day = _base(store)
    for name in ("a", "b"):
        tracker.record_and_trigger("phase3", day, name, execution_id=f"r-{name}",
                                   publish=_publish)
    tracker.record_and_trigger("phase4", day, "c", execution_id="r-c", publish=_publish)
    return tracker, day, base


def test_item4_healthy_state_fires_nothing(store: StateStore) -> None:
    """Both phases complete and triggered, a breaker closed, a lock released: no alert."""
    tracker, day, base = _healthy(store)
    CircuitBreaker("bigquery", store, instance_id="ops-test").call(lambda: None)
    with DateLock(store, "ingest", day, ttl=timedelta(seconds=30), owner="w"):
        pass
    ledger = MemoryLedger([LedgerRow("phase3", day, "a", "r-a", "success", base, base, True)])
    config = WatchConfig(phases={"phase3": PhaseRules(locks=("ingest",))},
                         breakers=("bigquery",))

    found = _watch(store, tracker, day, base + timedelta(days=3), config=config, ledger=ledger)

    assert found.healthy
    assert found.alerts == found.new == found.resolved == ()


def test_item4_default_dates_are_today_and_yesterday_in_the_phase_zone() -> None:
    """Without dates, each phase is watched on its today and yesterday (its time zone)."""
    clock = FakeClock(datetime.fromisoformat("2026-03-01T03:00:00+00:00"))
    store = MemoryStore(clock=clock)
    tracker = CompletionTracker(store, [PhaseSpec("east", {"a"}, timezone="America/New_York"),
                                        PhaseSpec("utc", {"a"})])

    found = watch(store, tracker, clock=clock)

    assert found.dates == {"east": ("2026-02-27", "2026-02-28"),
                           "utc": ("2026-02-28", "2026-03-01")}


# -- state: sent once, resolved once ---------------------------------------------------------


def test_item4_persisting_alert_is_not_sent_again(store: StateStore) -> None:
    """A second run finds the same alert firing: not new, and nothing is written."""
    tracker = _tracker(store)
    base, day = _base(store)
    tracker.record_completion("phase3", day, "a_typo", execution_id="r-x")
    first = _watch(store, tracker, day, base)
    writes = store.stats.writes

    second = _watch(store, tracker, day, base + timedelta(minutes=5))
    third = _watch(store, tracker, day, base + timedelta(minutes=10))

    assert [a.id for a in first.new] == [a.id for a in second.alerts]
    assert second.new == third.new == ()
    assert second.persisting == second.alerts
    assert store.stats.writes == writes


def test_item4_resolved_alert_is_reported_once(store: StateStore) -> None:
    """When the problem is gone the alert is reported resolved once, then never again."""
    tracker = _tracker(store)
    _, day = _base(store)
    tracker.record_completion("phase3", day, "a", execution_id="r-a")
    due = tracker.status("phase3", day).deadline_at
    assert due is not None
    config = WatchConfig(phases={"phase4": PhaseRules(disabled=frozenset({"phase_late"}))})
    late = _watch(store, tracker, day, due, config=config)
    assert [a.rule for a in late.new] == ["phase_late"]

    tracker.record_and_trigger("phase3", day, "b", execution_id="r-b", publish=_publish)
    tracker.record_and_trigger("phase4", day, "c", execution_id="r-c", publish=_publish)
    resolved = _watch(store, tracker, day, due, config=config)
    again = _watch(store, tracker, day, due, config=config)

    assert [a.id for a in resolved.resolved] == [late.new[0].id]
    assert resolved.alerts == resolved.new == ()
    assert again.resolved == again.new == again.alerts == ()


def test_item4_an_alert_that_returns_is_sent_again(memory_store: MemoryStore) -> None:
    """Resolved, then firing again: sent again (new), with the same id."""
    tracker = _tracker(memory_store)
    base, day = _base(memory_store)
    tracker.record_completion("phase3", day, "a_typo", execution_id="r-x")
    first = _watch(memory_store, tracker, day, base)
    gone = _watch(memory_store, tracker, day, base, config=WatchConfig(
        phases={"phase3": PhaseRules(disabled=frozenset({"ignored_completion"}))}))
    back = _watch(memory_store, tracker, day, base)

    assert [a.id for a in gone.resolved] == [a.id for a in first.new]
    assert [a.id for a in back.new] == [a.id for a in first.new]


def test_item4_failed_notify_sends_again_next_run(memory_store: MemoryStore) -> None:
    """If sending fails nothing is remembered: the next run sends the same alerts."""
    tracker = _tracker(memory_store)
    base, day = _base(memory_store)
    tracker.record_completion("phase3", day, "a_typo", execution_id="r-x")
    sent: list[list[str]] = []

    def broken(new: Any, resolved: Any) -> None:
        raise RuntimeError("topic gone")

    failed = _watch(memory_store, tracker, day, base, notify=broken)
    retried = _watch(memory_store, tracker, day, base,
                     notify=lambda new, resolved: sent.append([a.id for a in new]))

    assert failed.notify_error == "RuntimeError: topic gone"
    assert [a.id for a in retried.new] == [a.id for a in failed.new]
    assert sent == [[a.id for a in failed.new]]


def test_item4_alert_ids_are_stable_and_distinct() -> None:
    """The id depends on rule, phase, date and subject; never on the message."""
    from pipeline_reliability.ops import Alert

    one = Alert("phase_late", "critical", "p", "2026-01-01", "", "m1", "do")
    same = Alert("phase_late", "warning", "p", "2026-01-01", "", "m2", "other")
    other = Alert("phase_late", "critical", "p", "2026-01-02", "", "m1", "do")

    assert one.id == same.id != other.id
    assert one.id.startswith("phase_late-")
