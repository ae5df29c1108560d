"""``simulate --emulators``: the same game day on Firestore, Pub/Sub and BigQuery emulators."""

from __future__ import annotations

import pytest
from cli_helpers import Cli


@pytest.mark.firestore
@pytest.mark.pubsub
@pytest.mark.bigquery
@pytest.mark.slow
def test_simulate_on_the_emulators_holds_every_invariant(
    cli: Cli, firestore_emulator: str, pubsub_emulator: str, bigquery_emulator: str
) -> None:
    """One date on the emulators (real time, real Firestore transactions): 0 violated."""
    run = cli("simulate", "--emulators", "--dates", "1", "--seed", "2")

    assert run.status == 0, run.out + run.err
    lines = run.out.strip().splitlines()
    assert "on emulators" in lines[0]
    assert lines[-1].endswith(" 0 violated")
