"""Background renewal of a lease, and the lost-lease signal."""

from __future__ import annotations

import logging
import random
import threading

from .._telemetry import log_failure
from ..errors import LockLostError, StoreConflictError, StoreUnavailableError
from ._lease import BaseLease, Lease, OnLost

__all__ = ["RENEW_FRACTION", "RenewSchedule", "Renewer"]

logger = logging.getLogger("pipeline_reliability.lock")

# Renew every third of the TTL: two renewals can fail in a row before the
# lease is at risk, and a healthy lease costs three writes per TTL.
RENEW_FRACTION = 1 / 3
_RETRY_INITIAL = 0.1
_DEADLINE_GUARD = 2.0  # seconds: enough for one store request, even a slow one
TRANSIENT = (StoreUnavailableError, StoreConflictError)


class RenewSchedule:
    """
    When to renew next, and when to give up: the renewal decisions, without I/O.

    Shared by the renewal thread (:class:`Renewer`) and the asyncio renewal
    task. A renewal that fails with a transient store error is retried with
    jittered backoff, and the lease is declared lost only once its local
    deadline (:meth:`Lease.remaining`) has passed without a successful
    renewal: until then it is provably held.
    """

    def __init__(self, lease: BaseLease, interval: float) -> None:
        self.lease = lease
        self.interval = interval
        self._retry_delay = _RETRY_INITIAL
        self._rng = random.Random()

    def after_success(self) -> float:
        """The renewal worked: wait a full interval."""
        self._retry_delay = _RETRY_INITIAL
        return self.interval

    def after_transient(self, exc: Exception) -> float | None:
        """
        The renewal failed transiently: the delay before the next try, or
        ``None`` when the local deadline has passed (the lease is then marked lost).
        """
        left = self.lease.local_remaining_seconds()
        if left <= 0:
            reason = self.unreachable_reason(exc)
            self.lease.mark_lost("unreachable", reason)
            return None
        logger.warning(
            "lease renewal of %s/%s failed (%s: %s); retrying, %.2fs left",
            self.lease.name,
            self.lease.date,
            type(exc).__name__,
            exc,
            left,
            exc_info=exc,
        )
        # Jittered, doubling delay; the last attempt is placed a guard interval
        # (room for one request) before the deadline, and after that the next
        # step comes at the deadline itself, where the loss is declared.
        delay = self._rng.uniform(self._retry_delay / 2, self._retry_delay)
        self._retry_delay = min(self._retry_delay * 2, max(self.interval, _RETRY_INITIAL))
        guard = min(self.interval / 2, _DEADLINE_GUARD)
        if left > guard:
            return min(delay, left - guard)
        return left

    @staticmethod
    def unreachable_reason(exc: Exception) -> str:
        """Why a lease whose renewals kept failing is lost."""
        return f"could not renew before the lease's deadline: {type(exc).__name__}: {exc}"

    def after_unexpected(self, exc: Exception) -> str:
        """An error that is neither a loss nor transient: log it, mark the lease lost, say why."""
        log_failure(
            logger,
            "lease renewal failed unexpectedly",
            exc,
            lock=self.lease.name,
            date=self.lease.date,
        )
        reason = f"renewal failed: {type(exc).__name__}: {exc}"
        self.lease.mark_lost("error", reason)
        return reason


class Renewer:
    """
    Renews one lease until stopped, and signals its loss.

    The decision logic is :meth:`step`, which tests call directly with a fake
    clock; the thread only waits between steps. Backoff and the moment of
    loss are :class:`RenewSchedule`'s.
    """

    def __init__(self, lease: Lease, interval: float, on_lost: OnLost | None) -> None:
        self.lease = lease
        self.interval = interval
        self.on_lost = on_lost
        self._schedule = RenewSchedule(lease, interval)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the renewal thread (a daemon: it never keeps a process alive)."""
        self._thread = threading.Thread(
            target=self._run,
            name=f"pipeline-reliability-lease-{self.lease.name}-{self.lease.date}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing; waits for a renewal in flight unless called from the thread."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called or the lease was declared lost."""
        return self._stop.is_set()

    def step(self) -> float | None:
        """
        Renew once; return the seconds to wait before the next step, or
        ``None`` when renewal is over (stopped, or the lease is lost).
        """
        if self._stop.is_set():
            return None
        try:
            self.lease.renew()
        except LockLostError as exc:
            self._declare_lost(str(exc))
            return None
        except TRANSIENT as exc:
            delay = self._schedule.after_transient(exc)
            if delay is None:
                self._declare_lost(self._schedule.unreachable_reason(exc))
            return delay
        except Exception as exc:  # noqa: BLE001 - the thread must not die quietly
            self._declare_lost(self._schedule.after_unexpected(exc))
            return None
        return self._schedule.after_success()

    def _declare_lost(self, reason: str) -> None:
        self._stop.set()
        if self.on_lost is None:
            return
        try:
            self.on_lost(self.lease, reason)
        except Exception as exc:  # noqa: BLE001 - a user hook must not break the renewer
            log_failure(
                logger, "on_lost callback raised", exc, lock=self.lease.name, date=self.lease.date
            )

    def _run(self) -> None:
        delay: float | None = self.interval
        while delay is not None and not self._stop.wait(delay):
            delay = self.step()
