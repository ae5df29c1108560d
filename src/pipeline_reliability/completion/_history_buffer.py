"""
:class:`BufferedRunHistory`: a bounded buffer drained by one background thread.

``record`` takes a lock for a few microseconds, appends and returns; it never
waits for the writer. The bound counts every row not yet finished, the batch
being written included, so a writer that never returns holds at most
``max_pending`` rows and every later row is dropped and counted: the memory
and the delay a black-holed sink can cause are both bounded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from .._telemetry import counter, log_failure
from ..errors import ConfigurationError
from ._history import RunHistoryRow

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_MAX_PENDING", "BufferedRunHistory"]

logger = logging.getLogger("pipeline_reliability.completion")

#: Rows a :class:`BufferedRunHistory` holds (queued or being written) before it drops.
DEFAULT_MAX_PENDING = 1000
#: Rows per call of the writer, at most.
DEFAULT_BATCH_SIZE = 100
#: After the first drop of a streak, every this many drops is logged again.
_LOG_EVERY = 1000

Write = Callable[[Sequence[RunHistoryRow]], object]


class BufferedRunHistory:
    """
    A :class:`RunHistory` that hands rows, in batches, to ``write`` on a daemon thread.

    At most ``max_pending`` rows are held (queued plus the batch being
    written); a row that finds the buffer full, or the history closed, is
    dropped: counted in ``dropped`` and in the counter
    ``pipeline_reliability.tracker.history_dropped``, and logged at WARNING
    (the first drop after an accepted row, then every 1000th). A batch that
    ``write`` fails is logged with its traceback and counted in ``failed``
    (counter ``tracker.history_failed``); its rows are not retried here (a
    writer that wants retries does them within its own deadline).

    The thread starts with the first row (never at construction or import)
    and is a daemon: a process may exit with rows pending; call
    :meth:`close` at shutdown to give them ``timeout`` seconds.

    Args:
        write: Called with each batch, on the background thread.
        max_pending: The bound (rows), >= 1.
        batch_size: Rows per ``write`` call, at most, >= 1.

    Raises:
        ConfigurationError: ``write`` is not callable, or a bound is not a
            positive int.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        write: Write,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        given: object = write  # checked as given: callers may pass anything
        if not callable(given):
            raise ConfigurationError(f"write must be callable, got {type(write).__name__}")
        bounds: tuple[tuple[str, object], ...] = (
            ("max_pending", max_pending), ("batch_size", batch_size)
        )
        for name, value in bounds:
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10**7:
                raise ConfigurationError(f"{name} must be an int in 1..10**7, got {value!r:.40}")
        self._write = write
        self.max_pending = max_pending
        self.batch_size = batch_size
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[RunHistoryRow] = deque()
        self._held = 0  # queued + being written
        self._closed = False
        self._streak = 0  # drops since the last accepted row
        self._thread: threading.Thread | None = None
        #: Rows dropped: the buffer was full or the history closed.
        self.dropped = 0
        #: Rows handed to ``write`` that it wrote.
        self.written = 0
        #: Rows of batches ``write`` failed.
        self.failed = 0

    @property
    def pending(self) -> int:
        """Rows held: queued or being written."""
        with self._cond:
            return self._held

    def record(self, row: RunHistoryRow) -> None:
        """Take ``row``, or drop and count it when the buffer is full. Never blocks."""
        with self._cond:
            if not self._closed and self._held < self.max_pending:
                self._queue.append(row)
                self._held += 1
                self._streak = 0
                if self._thread is None:
                    self._start()
                self._cond.notify()
                return
            self.dropped += 1
            self._streak += 1
            streak, total, closed = self._streak, self.dropped, self._closed
        counter("tracker.history_dropped", "Run-history rows dropped (buffer full or closed)").add(
            1, {"phase": row.phase, "reason": "closed" if closed else "full"}
        )
        if streak == 1 or streak % _LOG_EVERY == 0:
            logger.warning(
                "run history %s: row dropped (%d dropped in a row, %d in all; bound %d)",
                "closed" if closed else "full",
                streak,
                total,
                self.max_pending,
                extra={"pipeline_reliability": {"phase": row.phase, "date": row.date}},
            )

    def flush(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (``None``: no limit) until nothing is held."""
        with self._cond:
            return self._cond.wait_for(lambda: self._held == 0, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """
        Stop taking rows (later ones are dropped), give the held ones up to
        ``timeout`` seconds, and stop the thread. ``True`` if all were written.
        """
        start = time.monotonic()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        drained = self.flush(timeout)
        thread = self._thread
        if thread is not None:
            left = None if timeout is None else max(timeout - (time.monotonic() - start), 0.0)
            thread.join(left)
        with self._cond:
            return drained and self.failed == 0

    def _start(self) -> None:
        self._thread = threading.Thread(
            target=self._drain, name="pipeline_reliability-run-history", daemon=True
        )
        self._thread.start()

    def _drain(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._closed)
                if not self._queue:
                    return  # closed and empty
                size = min(len(self._queue), self.batch_size)
                batch = [self._queue.popleft() for _ in range(size)]
            ok = False
            try:
                self._write(batch)
                ok = True
            except Exception as exc:  # noqa: BLE001 - observability must not die on a sink error
                counter("tracker.history_failed", "Run-history rows the sink failed to write").add(
                    len(batch)
                )
                log_failure(logger, "run history rows not written", exc, rows=len(batch))
            with self._cond:
                self._held -= len(batch)
                if ok:
                    self.written += len(batch)
                else:
                    self.failed += len(batch)
                self._cond.notify_all()
