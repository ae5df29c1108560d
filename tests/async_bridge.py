"""
Run the async twins through the sync tests: small adapters, no copies of tests.

A sync contract or scenario test written against ``DateLock`` or
``IdempotencyLedger`` runs unchanged against ``AsyncDateLock`` or
``AsyncIdempotencyLedger`` when handed these views: every coroutine is run to
completion on one ``asyncio.Runner`` (one event loop per test, so that
auto-renewal tasks live across calls). ``AsyncOverSync`` turns any sync store (a
``FaultyStore`` included) into an ``AsyncStateStore`` the same way
``AsyncMemoryStore`` does, so fault injection works for both forms.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from pipeline_reliability import (
    AsyncDateLock,
    AsyncIdempotencyLedger,
    AsyncLease,
)
from pipeline_reliability.dedup import Claimed, ClaimResult, Completed

T = TypeVar("T")


class SyncLeaseView:
    """An ``AsyncLease`` with ``renew``/``ensure_held`` run to completion."""

    def __init__(self, lease: AsyncLease, run: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        self.inner = lease
        self._run = run

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def renew(self) -> dt.datetime:
        result: dt.datetime = self._run(self.inner.renew())
        return result

    def ensure_held(self) -> None:
        self._run(self.inner.ensure_held())


class SyncLockView:
    """An ``AsyncDateLock`` shaped like a ``DateLock``."""

    def __init__(self, lock: AsyncDateLock, runner: asyncio.Runner) -> None:
        self.inner = lock
        self.runner = runner
        self._views: dict[AsyncLease, SyncLeaseView] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _view(self, lease: AsyncLease | None) -> SyncLeaseView | None:
        if lease is None:
            return None
        if lease not in self._views:
            self._views[lease] = SyncLeaseView(lease, self.runner.run)
        return self._views[lease]

    @property
    def lease(self) -> SyncLeaseView | None:
        return self._view(self.inner.lease)

    def acquire(
        self, blocking: bool = True, timeout: float | dt.timedelta | None = None
    ) -> SyncLeaseView:
        lease = self.runner.run(self.inner.acquire(blocking, timeout))
        view = self._view(lease)
        assert view is not None
        return view

    def release(self) -> None:
        self.runner.run(self.inner.release())

    def locked(self) -> bool:
        return bool(self.runner.run(self.inner.locked()))

    def __enter__(self) -> SyncLeaseView:
        view = self._view(self.runner.run(self.inner.__aenter__()))
        assert view is not None
        return view

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.runner.run(self.inner.__aexit__(exc_type, exc, tb))


class SyncLedgerView:
    """An ``AsyncIdempotencyLedger`` shaped like an ``IdempotencyLedger``."""

    def __init__(self, ledger: AsyncIdempotencyLedger, runner: asyncio.Runner) -> None:
        self.inner = ledger
        self.runner = runner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def claim(self, key: str, payload: Any = None) -> ClaimResult:
        result: ClaimResult = self.runner.run(self.inner.claim(key, payload))
        return result

    def complete(self, key: str | Claimed, result: Any = None) -> Completed:
        done: Completed = self.runner.run(self.inner.complete(key, result))
        return done

    def release(self, key: str | Claimed) -> bool:
        return bool(self.runner.run(self.inner.release(key)))
