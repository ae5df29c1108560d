"""The breaker's inspection and operator actions: ``state``, ``status``, listeners, force/reset."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from ..errors import InvalidInputError
from ._config import show
from ._events import BreakerListener
from ._policy import PolicyEngine
from ._state import Action, BreakerState, open_seconds
from ._status import BreakerStatus

__all__ = ["Admin"]


class Admin(PolicyEngine):
    """What operators and dashboards call on a :class:`CircuitBreaker`."""

    # ------------------------------------------------------------------ inspection

    @property
    def state(self) -> BreakerState:
        """The circuit's state, as of a read at most ``cache_ttl`` old (refreshed if older)."""
        self._refresh_if_stale()
        return self._view.circuit.state

    def status(self, *, refresh: bool = False) -> BreakerStatus:
        """
        This instance's view of the circuit, without touching the store.

        Args:
            refresh: Read the store first (store errors then raise).

        Raises:
            InvalidInputError: ``refresh`` is not a bool.
            StoreError: ``refresh=True`` and the store failed.
        """
        if not isinstance(cast(object, refresh), bool):
            raise InvalidInputError(f"refresh must be True or False, got {show(refresh)}")
        if refresh:
            try:
                error = self._refresh(self._mono(), force=True)
            finally:
                if self._pending:
                    self._flush()
            if error is not None:
                raise error
        with self._lock:
            view, mono = self._view, self._mono()
            circuit, probe = view.circuit, view.circuit.probe
            return BreakerStatus(
                name=self.name,
                instance_id=self.instance_id,
                state=circuit.state,
                generation=circuit.generation,
                opened_at=circuit.opened_at,
                forced=circuit.forced,
                probe_holder=None if probe is None else probe.holder,
                probe_expires_at=None if probe is None else probe.expires_at,
                is_prober=self._is_prober(circuit, mono),
                reporters=len(circuit.reports),
                read_at=self._read_at(),
                store_error=None if self._store_error is None else repr(self._store_error),
                open_for=None if circuit.state is BreakerState.CLOSED
                else timedelta(seconds=open_seconds(circuit, self.config)),
            )

    def add_listener(self, listener: BreakerListener) -> None:
        """
        Call ``listener(event)`` on transitions, rejections and trip reports.

        Raises:
            InvalidInputError: ``listener`` is not callable.
        """
        if not callable(listener):
            raise InvalidInputError(f"a listener must be callable, got {show(listener)}")
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: BreakerListener) -> None:
        """Stop calling ``listener`` (no error if it was not added)."""
        with self._lock:
            self._listeners = tuple(x for x in self._listeners if x is not listener)

    # ------------------------------------------------------------------ operator actions

    def force_open(self) -> None:
        """
        Open the circuit for every instance until :meth:`force_close` or :meth:`reset`.

        A forced-open circuit never elects a probe. Store errors raise: an
        operator must know whether the change happened.

        Raises:
            StoreError: the store failed (the change may not have happened).
        """
        self._operator(Action.FORCE_OPEN)

    def force_close(self) -> None:
        """
        Close the circuit for every instance (no write when it is already closed).

        Raises:
            StoreError: the store failed (the change may not have happened).
        """
        self._operator(Action.FORCE_CLOSE)

    def reset(self) -> None:
        """
        Close the circuit, drop pending trip reports, and clear this instance's window.

        Writes only when the document is not already closed without reports.

        Raises:
            StoreError: the store failed (the change may not have happened).
        """
        self._operator(Action.RESET)

    def _operator(self, action: Action) -> None:
        try:
            self._transact(action, None, self._mono(), operator=True)
            if action is Action.RESET:
                with self._lock:
                    self._window.clear()
                    self._reported_gen = -1
        finally:
            if self._pending:
                self._flush()

    def _refresh_if_stale(self) -> None:
        mono = self._mono()
        if mono < self._view_fresh:
            return
        try:
            self._refresh(mono)
        finally:
            if self._pending:
                self._flush()
