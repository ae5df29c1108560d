"""RunFence: the lease's fencing token, withheld once the run knows it is lost."""

from __future__ import annotations

import threading

from ..errors import LockLostError
from ..lock import Lease

__all__ = ["RunFence"]


class RunFence:
    """
    What ``run.fence`` is: a fence for ``BigQueryWriter.upsert(..., fence=)``
    and ``FenceGuard.check(run.fence.token)``.

    Reading :attr:`token` costs no I/O. It raises ``LockLostError`` once the
    lease is known to be lost (the auto-renewal or a check found it so) or
    the run has ended, so a run stops sending fenced writes as soon as it
    knows. A holder that does not know yet is stopped by the sink, which
    refuses tokens older than one it has seen.

    .. versionadded:: 0.2.0
    """

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self._closed = threading.Event()

    def __repr__(self) -> str:
        return f"<RunFence token={self.lease.token} {self.lease!r}>"

    @property
    def token(self) -> int:
        """The fencing token of the run's lease."""
        if self._closed.is_set():
            raise LockLostError(
                f"the run of {self.lease.name}/{self.lease.date} has ended: no more fenced writes"
            )
        if self.lease.lost:
            raise LockLostError(
                f"the lease on {self.lease.name}/{self.lease.date} is lost "
                f"({self.lease.lost_reason}): no more fenced writes"
            )
        return self.lease.token

    def close(self) -> None:
        """End the fence: the run is over."""
        self._closed.set()
