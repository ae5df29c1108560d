"""What one instance knows about its circuit, as a frozen value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ._state import BreakerState

__all__ = ["BreakerStatus"]


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """
    What one instance knows about its circuit (see :meth:`CircuitBreaker.status`).

    Attributes:
        name: The breaker's name.
        instance_id: This instance's id.
        state: The state of the cached view.
        generation: Its generation (0: never written).
        opened_at: When it last opened (store time), if open or half-open.
        forced: Whether it was forced open.
        probe_holder: The instance holding the half-open probe lease, if any.
        probe_expires_at: When that lease expires (store time).
        is_prober: Whether this instance holds the lease and may still admit probes.
        reporters: Instances with a live trip report (``open_quorum > 1``).
        read_at: The store time of the read the view comes from (``None``: never read).
        store_error: The last store failure, while the breaker is backing off from it.
        open_for: How long the current opening lasts (``reset_timeout``, grown by
            ``reset_backoff`` per failed probe); ``None`` while closed.
    """

    name: str
    instance_id: str
    state: BreakerState
    generation: int
    opened_at: datetime | None
    forced: bool
    probe_holder: str | None
    probe_expires_at: datetime | None
    is_prober: bool
    reporters: int
    read_at: datetime | None
    store_error: str | None
    open_for: timedelta | None = None
