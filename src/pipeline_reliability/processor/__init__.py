"""
The processor side: run one processor's date under its lock, with fenced
writes, and publish its completion in the schema the orchestrator reads.

Composes the capabilities (``lock``, ``dedup``'s idempotency ledger) and the
Pub/Sub edge (``CompletionPublisher``); sits below ``cli``.

Example::

    from pipeline_reliability import CompletionPublisher, ProcessorRun

    publisher = CompletionPublisher("phase3-complete", project="my-project")
    with ProcessorRun("player_game_summary", "2026-01-31", phase="phase_3_analytics",
                      publisher=publisher, lock={"store": store}) as run:
        run.record_count = write_rows(fence=run.fence)
"""

from __future__ import annotations

from ._decorator import processor_run
from ._fence import RunFence
from ._options import RUN_STATUSES
from ._run import ProcessorRun, PublishCompletion

__all__ = ["ProcessorRun", "PublishCompletion", "RUN_STATUSES", "RunFence", "processor_run"]
