"""
The global testing switch: with it on, retries happen at once, without sleeping.

Kept in a module of its own so that the engine reads one flag, and so that the
flag is never set from the environment (importing the package reads no
environment variable, DESIGN F10).
"""

from __future__ import annotations

import threading
from types import TracebackType

__all__ = ["is_testing", "set_testing"]

_lock = threading.Lock()
_enabled = False


class _Restore:
    """Returned by :func:`set_testing`; leaving its ``with`` block restores the old value."""

    __slots__ = ("_previous",)

    def __init__(self, previous: bool) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _enabled  # noqa: PLW0603 - one process-wide switch is the point
        with _lock:
            _enabled = self._previous


def set_testing(enabled: bool = True) -> _Restore:
    """
    Turn testing mode on (or off) for the whole process.

    In testing mode every retry happens at once: no backoff, no server-suggested
    wait, neither ``time.sleep``/``asyncio.sleep`` nor an injected clock's
    ``sleep``. Attempts, predicates, exhaustion and telemetry are unchanged, so
    tests still see exactly what production would do, only faster.

    The switch takes effect immediately. Used as a context manager, it restores
    the previous value when the block ends::

        with set_testing(True):
            run_the_code_under_test()

    Args:
        enabled: ``True`` to remove sleeps, ``False`` to restore them.

    Returns:
        A context manager that restores the previous setting on exit.

    .. versionadded:: 0.1.0
    """
    global _enabled  # noqa: PLW0603 - one process-wide switch is the point
    with _lock:
        previous = _enabled
        _enabled = bool(enabled)
    return _Restore(previous)


def is_testing() -> bool:
    """
    Return whether testing mode (no sleeps between retries) is on.

    .. versionadded:: 0.1.0
    """
    return _enabled
