"""FenceGuard: the writer's side of fencing tokens."""

from __future__ import annotations

import threading
from collections.abc import Hashable

from .._validate import describe
from ..errors import InvalidInputError, StaleFenceError
from ._options import check_token

__all__ = ["FenceGuard"]


class FenceGuard:
    """
    Remember the newest fencing token per resource and refuse older ones.

    A writer that receives writes from lock holders keeps one guard (per
    process, or rebuilt from the newest token stored with the data) and
    calls :meth:`check` with each write's token before applying it. A holder
    that paused past its TTL and resumes after a newer holder wrote is then
    refused, even though it still believes it holds the lock (Kleppmann's
    fencing). Thread-safe.

    Example::

        guard = FenceGuard()
        guard.check(lease.token, key=("phase4", "2026-01-31"))   # admitted
        guard.check(older_lease.token, key=("phase4", "2026-01-31"))   # StaleFenceError
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._newest: dict[Hashable, int] = {}

    def check(self, token: int, key: Hashable = None) -> int:
        """
        Admit ``token`` for ``key`` if no newer token was admitted; remember it.

        Equal tokens are admitted (one holder writes many times). Token ``0``
        (an unfenced lease) is refused once any real token has been admitted.

        Returns:
            ``token``.

        Raises:
            StaleFenceError: a newer token was already admitted for ``key``.
            InvalidInputError: ``token`` is not a non-negative int, or ``key``
                is not hashable.
        """
        check_token(token, "a fencing token")
        with self._lock:
            newest = self._lookup(key)
            if newest is not None and token < newest:
                raise StaleFenceError(
                    f"fencing token {describe(token)} is stale for {describe(key)}: "
                    f"token {describe(newest)} already wrote",
                    token=token,
                    current=newest,
                )
            self._newest[key] = token
        return token

    def newest(self, key: Hashable = None) -> int | None:
        """
        The newest token admitted for ``key``, or ``None``.

        Raises:
            InvalidInputError: ``key`` is not hashable.
        """
        with self._lock:
            return self._lookup(key)

    def _lookup(self, key: Hashable) -> int | None:
        # Checked here, not by the caller: hashing a hostile key (a list, a
        # tuple nested thousands deep) fails inside the dict operation itself.
        try:
            return self._newest.get(key)
        except (TypeError, RecursionError) as exc:
            raise InvalidInputError(f"a fence key must be hashable, got {describe(key)}") from exc
