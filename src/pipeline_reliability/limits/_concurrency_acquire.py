"""
One ``slot()`` call's bookkeeping, without I/O: the sync and async loops share it.

The loops do only the store calls and the sleeping; what to do with each
answer (grant, poll again, give up, recover a lost commit, fail open) is
decided here.
"""

from __future__ import annotations

import logging
import random

from ..errors import SlotNotAcquiredError, StoreUnavailableError
from ..stores import Snapshot
from ._concurrency_events import SlotEvent, Telemetry
from ._concurrency_options import Backoff, LimitConfig
from ._slots import Full, Granted, LimitDoc

__all__ = ["AcquireRun"]

logger = logging.getLogger("pipeline_reliability.limits")


class AcquireRun:
    """
    The state of one acquire: its request, its backoff, the last answer seen.

    The first attempt goes straight to the transaction, so an uncontended
    acquire costs exactly one store operation; later polls read first and
    run a transaction only when the read says it can help (``_slots.peek``).
    """

    def __init__(
        self, config: LimitConfig, telemetry: Telemetry, timeout: float, rng: random.Random
    ) -> None:
        self.config = config
        self.telemetry = telemetry
        self.request = config.request(timeout)
        self.backoff = Backoff(config.clock, timeout, rng)
        self.first = True
        self.last: Full | None = None

    @property
    def slot_id(self) -> str:
        return self.request.slot_id

    def granted(self, result: Granted) -> None:
        """Report a grant (event and counter)."""
        self.telemetry.emit(
            SlotEvent(
                "acquired",
                self.config.name,
                self.config.owner,
                self.slot_id,
                holders=result.holders,
                waited=self.backoff.waited(),
                at=result.acquired_at,
            )
        )

    def next_sleep(self, outcome: Full | None) -> float | None:
        """Seconds to sleep before the next poll (``None``: give up). ``None`` = contention."""
        self.first = False
        if outcome is not None:
            self.last = outcome
        self.telemetry.poll()
        expiry_in = None
        if outcome is not None and outcome.next_expiry is not None:
            expiry_in = (outcome.next_expiry - outcome.now).total_seconds()
        return self.backoff.next_sleep(expiry_in)

    @property
    def queued(self) -> bool:
        """Whether the last answer showed this caller's ticket in the queue."""
        return self.last is not None and self.last.position is not None

    def timed_out(self) -> SlotNotAcquiredError:
        """The error to raise when the wait is over (after the ticket was withdrawn)."""
        c, last, waited = self.config, self.last, self.backoff.waited()
        holders = last.holders if last is not None else c.limit
        waiters = last.waiters if last is not None else 0
        reason = f"{holders}/{c.limit} slots held, {waiters} waiting"
        self.telemetry.emit(
            SlotEvent("timeout", c.name, c.owner, None, holders=holders, waited=waited,
                      reason=reason, at=None if last is None else last.now)
        )
        return SlotNotAcquiredError(
            f"no slot of concurrency limit {c.name!r} within {waited:.3f}s ({reason})",
            name=c.name,
            limit=c.limit,
            holders=holders,
            waiters=waiters,
            waited=waited,
        )

    def recovered(self, snap: Snapshot) -> Granted | None:
        """After a lost commit answer: the grant, if the read-back shows our slot live."""
        held = LimitDoc.parse(snap).holders.get(self.slot_id)
        if held is None or held.owner != self.config.owner:
            return None
        return Granted(held.acquired_at, held.expires_at, 0)

    def store_failed(self, exc: StoreUnavailableError) -> None:
        """Fail closed (re-raise ``exc``), or report that the caller runs without a slot."""
        self.telemetry.store_error("acquire")
        c = self.config
        if c.on_store_error == "fail_closed":
            raise exc
        logger.warning(
            "concurrency-limit store failed; running WITHOUT a slot of %s (fail_open)",
            c.name,
            exc_info=exc,
            extra={"pipeline_reliability": {"limit": c.name, "owner": c.owner}},
        )
        self.telemetry.emit(
            SlotEvent("bypassed", c.name, c.owner, self.slot_id, waited=self.backoff.waited(),
                      reason=f"{type(exc).__name__}: {exc}")
        )

