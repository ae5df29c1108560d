"""
Fenced date locks: one holder per (name, date) across every process that
shares the store, with leases judged by the store's time, renewal, a
lost-lease signal and fencing tokens that writers can check (DESIGN F7).

``AsyncDateLock`` and ``AsyncLease`` are the asyncio twins, over an
``AsyncStateStore``: the same decisions and documents, awaited.
"""

from __future__ import annotations

from ._async_lease import AsyncLease
from ._async_lock import AsyncDateLock
from ._fence import FenceGuard
from ._lease import Lease
from ._lock import DateLock, date_lock
from ._ops import LockInfo, break_lock

__all__ = [
    "AsyncDateLock",
    "AsyncLease",
    "DateLock",
    "FenceGuard",
    "Lease",
    "LockInfo",
    "break_lock",
    "date_lock",
]
