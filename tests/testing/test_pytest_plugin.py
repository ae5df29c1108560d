"""The pytest plugin shipped to users, tested from the outside with pytester."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

# Load the plugin explicitly by module (and block its entry point, which
# would register the same module a second time under its entry-point name):
# the plugin must work whether or not entry points are auto-loaded.
PLUGIN = ("-p", "no:pipeline_reliability", "-p", "pipeline_reliability.testing.pytest_plugin")


def test_fixtures_give_a_store_on_a_fake_clock(pytester: pytest.Pytester) -> None:
    """reliability_store is an empty MemoryStore whose time is fake_clock."""
    pytester.makepyfile(
        """
        from pipeline_reliability import MemoryStore
        from pipeline_reliability.stores import Outcome, Put

        def test_store(reliability_store, fake_clock):
            assert isinstance(reliability_store, MemoryStore)
            assert reliability_store.dump() == {}
            before = reliability_store.get("c", "k").now
            fake_clock.advance(60)
            assert (reliability_store.get("c", "k").now - before).total_seconds() == 60
            reliability_store.transact("c", "k", lambda s: Outcome(None, Put({"a": 1})))
            assert reliability_store.get("c", "k").data == {"a": 1}
        """
    )

    result = pytester.runpytest(*PLUGIN)

    result.assert_outcomes(passed=1)


def test_each_test_gets_a_fresh_store(pytester: pytest.Pytester) -> None:
    """Nothing written by one test is visible to the next."""
    pytester.makepyfile(
        """
        from pipeline_reliability.stores import Outcome, Put

        def test_write(reliability_store):
            reliability_store.transact("c", "k", lambda s: Outcome(None, Put({"a": 1})))

        def test_read(reliability_store):
            assert not reliability_store.get("c", "k").exists
        """
    )

    result = pytester.runpytest(*PLUGIN)

    result.assert_outcomes(passed=2)


def test_faulty_store_injects_planned_faults(pytester: pytest.Pytester) -> None:
    """faulty_store wraps reliability_store and raises the faults a test plans."""
    pytester.makepyfile(
        """
        import pytest
        from pipeline_reliability.errors import StoreUnavailableError
        from pipeline_reliability.testing import Fault, FaultyStore

        def test_outage(faulty_store, reliability_store):
            assert isinstance(faulty_store, FaultyStore)
            assert faulty_store.inner is reliability_store
            faulty_store.fail_next(Fault.UNAVAILABLE)
            with pytest.raises(StoreUnavailableError):
                faulty_store.get("c", "k")
            assert not faulty_store.get("c", "k").exists
        """
    )

    result = pytester.runpytest(*PLUGIN)

    result.assert_outcomes(passed=1)


def test_a_conftest_fake_clock_overrides_the_plugin(pytester: pytest.Pytester) -> None:
    """A project's own fake_clock wins, and reliability_store uses it."""
    pytester.makeconftest(
        """
        import datetime as dt
        import pytest
        from pipeline_reliability.testing import FakeClock

        START = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)

        @pytest.fixture
        def fake_clock():
            return FakeClock(START)
        """
    )
    pytester.makepyfile(
        """
        from conftest import START

        def test_clock(reliability_store, fake_clock):
            assert fake_clock.now() == START
            assert reliability_store.get("c", "k").now == START
        """
    )

    result = pytester.runpytest(*PLUGIN)

    result.assert_outcomes(passed=1)


def test_the_plugin_can_be_disabled(pytester: pytest.Pytester) -> None:
    """Without the plugin the fixtures do not exist (our own suite runs that way)."""
    pytester.makepyfile(
        """
        def test_store(reliability_store):
            pass
        """
    )

    result = pytester.runpytest("-p", "no:pipeline_reliability")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'reliability_store' not found*"])


def test_emulator_fixture_fails_when_required(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --reliability-require-emulators a missing emulator fails instead of skipping."""
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CLOUDSDK_ROOT", raising=False)
    pytester.makepyfile(
        """
        def test_needs_firestore(reliability_firestore_store):
            pass
        """
    )

    result = pytester.runpytest(*PLUGIN, "--reliability-require-emulators")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*Firestore emulator is required*"])


def test_emulator_fixture_skips_when_missing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside CI, a missing emulator skips the test with the reason."""
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CLOUDSDK_ROOT", raising=False)
    pytester.makepyfile(
        """
        def test_needs_firestore(reliability_firestore_store):
            pass
        """
    )

    result = pytester.runpytest(*PLUGIN, "-rs")

    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*Firestore emulator could not start*"])


@pytest.mark.firestore
def test_emulator_store_is_a_working_firestore_store(
    pytester: pytest.Pytester, firestore_emulator: str
) -> None:
    """On a running emulator, reliability_firestore_store reads and writes Firestore."""
    pytester.makepyfile(
        """
        from pipeline_reliability.stores import Outcome, Put
        from pipeline_reliability.stores.firestore import FirestoreStore

        def test_roundtrip(reliability_firestore_store):
            store = reliability_firestore_store
            assert isinstance(store, FirestoreStore)
            store.transact("things", "one", lambda s: Outcome(None, Put({"n": 1})))
            assert store.get("things", "one").data == {"n": 1}
        """
    )

    result = pytester.runpytest(*PLUGIN)

    result.assert_outcomes(passed=1)
