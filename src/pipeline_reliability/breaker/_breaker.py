"""The public ``CircuitBreaker``: decorator, context manager, ``call`` and admin operations."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import timedelta
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from .._clock import Clock
from .._identity import default_owner
from .._keys import MAX_ID_BYTES, encode_key, validate_id
from ..errors import CircuitOpenError, ConfigurationError, InvalidInputError
from ..stores._protocol import StateStore
from ._admin import Admin
from ._config import (
    BreakerConfig,
    Mode,
    OnStoreError,
    WindowType,
    resolve_window,
    seconds,
    show,
)
from ._core import _open_error
from ._policy import _NOOP, NO_RESULT, seconds_or_none

__all__ = ["CircuitBreaker"]

P = ParamSpec("P")
T = TypeVar("T")

# Calls in progress under ``with breaker:``, per thread / asyncio task: (breaker,
# ticket, start). A ticket is what admission hands a call: ``generation << 1 | is_probe``.
_ACTIVE: ContextVar[tuple[tuple[object, int, float], ...]] = ContextVar(
    "pipeline_reliability_breaker_active", default=()
)


class CircuitBreaker(Admin):
    """
    A circuit breaker shared by every instance that uses the same ``name`` and store.

    Failures are counted in memory, per instance, over a sliding ``window``.
    The shared document holds only the state, a generation number, when it
    opened, the half-open probe lease and (``open_quorum > 1``) the trip
    reports. It is written only on a transition, as a compare-and-set on the
    generation, so a healthy circuit costs zero writes and at most one read
    per ``cache_ttl`` per instance.

    Use it as a decorator (sync or ``async`` functions), as a context manager
    (``with`` / ``async with``), or through :meth:`call` / :meth:`call_async`.

    Args:
        name: Any non-empty string; escaped into a document id, no registration.
        store: Where the circuit is shared (``MemoryStore``, ``FirestoreStore``).
        failure_threshold: Failures within ``window`` on one instance that trip it.
        window: How long a failure (or call) counts (``timedelta`` or seconds).
        minimum_calls: Calls the window must hold before it may trip
            (default: ``failure_threshold``, i.e. no extra condition).
        reset_timeout: How long the circuit stays open before one probe is
            elected; also the probe lease's duration.
        half_open_probes: Trial calls admitted, fleet-wide, per half-open generation.
        success_threshold: Successful probes that close the circuit (≤ half_open_probes).
        excluded: Exception types that are neither success nor failure; they pass through.
        failure_predicate: ``exc -> bool``; ``False`` makes an exception neutral too.
        cache_ttl: How long this instance trusts its cached view of the circuit;
            also how long it leaves a failing store alone after a failed call
            (counted from the end of that call).
        store_timeout: The deadline of each store call the breaker makes on a
            caller's path (read, trip, election, probe verdict; default
            250 ms). While one thread waits on the store, this instance's
            other threads decide on the cached view without waiting.
        probe_timeout: How long the elected instance may run its half-open
            probes (default 60 s). A probe that finishes later counts as
            failed; another instance may probe only after the lease plus one
            ``reset_timeout``, so slow probes never let more probes in.
        on_store_error: ``"fail_open"`` serves with the local view while the store
            fails; ``"fail_closed"`` rejects. Both log with traceback and count.
        open_quorum: Distinct instances whose windows must trip within ``window``
            before the circuit opens for everyone.
        clock: Time source (a ``FakeClock`` in tests).
        instance_id: This instance's id (default: host, pid and a random suffix).
        collection: The collection holding circuit documents.
        failure_rate: Trip on the failure *rate* (0 < rate ≤ 1) over a sliding
            window instead of on ``failure_threshold`` failures: the circuit
            trips when a failed (or slow) call leaves the window with at least
            ``minimum_calls`` calls of which at least this fraction failed.
        window_type: The rate policies' window: ``"count"`` (the last
            ``window_size`` calls, default 100) or ``"time"`` (the last
            ``window_size`` seconds, default ``window``, in 20 buckets).
        window_size: Calls (count window) or a duration (time window).
            With a rate policy, ``minimum_calls`` defaults to 100 (at most
            ``window_size`` for a count window).
        slow_call_duration: A call that takes at least this long (on the
            clock's monotonic time) is slow. Without ``slow_call_rate`` a slow
            call counts as a failure; a slow probe always fails.
        slow_call_rate: Trip when this fraction of the window's calls were slow
            (needs ``slow_call_duration`` and ``failure_rate``).
        failure_if: ``result -> bool``; ``True`` counts a returned result as a
            failure (the result is still returned). Not asked in ``with`` blocks.
        reset_backoff: Each failed probe multiplies the open duration by this
            (≥ 1; default 1: every opening lasts ``reset_timeout``). The grown
            duration is stored with the OPEN transition, so every instance
            waits the same; a successful close starts again from ``reset_timeout``.
        max_reset_timeout: The cap of the grown open duration (default: none).
        mode: ``"enforce"`` (default) or ``"observe"``: record, transition,
            emit events and metrics, but never reject (a would-be rejection
            emits a ``RejectionEvent`` with ``enforced=False`` and the call runs).
        fallback: ``fallback(error, *args, **kwargs)`` is called instead of
            raising when ``call``/the decorator reject, and its result returned
            (awaited when it is awaitable, in async calls). ``with`` blocks still raise.

    Raises:
        ConfigurationError: invalid options.
    """

    def __init__(
        self,
        name: str,
        store: StateStore,
        *,
        failure_threshold: int = 5,
        window: timedelta | float = timedelta(seconds=60),
        minimum_calls: int | None = None,
        reset_timeout: timedelta | float = timedelta(seconds=60),
        half_open_probes: int = 1,
        success_threshold: int = 1,
        excluded: tuple[type[BaseException], ...] | type[BaseException] = (),
        failure_predicate: Callable[[BaseException], bool] | None = None,
        cache_ttl: timedelta | float = timedelta(seconds=5),
        store_timeout: timedelta | float = timedelta(milliseconds=250),
        probe_timeout: timedelta | float = timedelta(seconds=60),
        on_store_error: OnStoreError = "fail_open",
        open_quorum: int = 1,
        clock: Clock | None = None,
        instance_id: str | None = None,
        collection: str = "circuit_breakers",
        failure_rate: float | None = None,
        window_type: WindowType | None = None,
        window_size: int | timedelta | float | None = None,
        slow_call_duration: timedelta | float | None = None,
        slow_call_rate: float | None = None,
        failure_if: Callable[[Any], bool] | None = None,
        reset_backoff: float = 1.0,
        max_reset_timeout: timedelta | float | None = None,
        mode: Mode = "enforce",
        fallback: Callable[..., Any] | None = None,
    ) -> None:
        key = _circuit_key(name)
        if instance_id is None:
            instance_id = default_owner()
        else:
            _check_text(instance_id, "instance_id")
        if not isinstance(cast(object, store), StateStore):
            raise ConfigurationError(f"store must be a StateStore, got {show(store)}")
        if clock is not None and not callable(getattr(clock, "monotonic", None)):
            raise ConfigurationError(f"clock must have a monotonic() method, got {show(clock)}")
        window_seconds = seconds(window, "window")
        kind, size, minimum = resolve_window(
            rate_based=failure_rate is not None or slow_call_rate is not None,
            window_type=window_type, window_size=window_size, window=window_seconds,
            minimum_calls=minimum_calls, failure_threshold=failure_threshold,
        )
        config = BreakerConfig(
            failure_threshold=failure_threshold,
            window=window_seconds,
            minimum_calls=cast(int, minimum),
            reset_timeout=seconds(reset_timeout, "reset_timeout"),
            half_open_probes=half_open_probes,
            success_threshold=success_threshold,
            excluded=excluded if isinstance(excluded, tuple) else (excluded,),
            failure_predicate=failure_predicate,
            cache_ttl=seconds(cache_ttl, "cache_ttl", allow_zero=True),
            store_timeout=seconds(store_timeout, "store_timeout"),
            probe_timeout=seconds(probe_timeout, "probe_timeout"),
            on_store_error=on_store_error,
            open_quorum=open_quorum,
            collection=collection,
            failure_rate=failure_rate,
            window_type=cast(WindowType, kind),
            window_size=size,
            slow_call_duration=seconds_or_none(slow_call_duration, "slow_call_duration"),
            slow_call_rate=slow_call_rate,
            failure_if=failure_if,
            reset_backoff=reset_backoff,
            max_reset_timeout=seconds_or_none(max_reset_timeout, "max_reset_timeout"),
            mode=mode,
            fallback=fallback,
        )
        super().__init__(
            name,
            key=key,
            store=store,
            config=config,
            clock=clock,
            instance_id=instance_id,
        )

    def __repr__(self) -> str:
        view = self._view.circuit
        return (
            f"CircuitBreaker({self.name!r}, instance_id={self.instance_id!r}, "
            f"state={view.state.value}, generation={view.generation})"
        )

    # ------------------------------------------------------------------ calling

    def call(  # noqa: PLR0912, PLR0915  (hot paths inlined on purpose)
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """
        Run ``fn(*args, **kwargs)`` through the breaker.

        Raises:
            CircuitOpenError: the circuit rejects the call (``fn`` did not run).
            InvalidInputError: ``fn`` is not callable.
        """
        if not callable(fn):
            raise InvalidInputError(f"fn must be callable, got {show(fn)}")
        # The hot paths of Engine._admit, inlined: this is the per-call cost of
        # a healthy circuit, and of every rejection during an outage.
        mono = self._mono()
        if mono < self._fresh_until and (gen := self._closed_gen) >= 0:
            ticket = gen << 1
        elif mono < self._reject_until and not self._listeners:
            self._c_rejections.add(1, self._reject_attrs)
            due = self._reject_due
            seconds = None if due is None else due - mono
            if self._fallback is None:
                # Raised without a local name: a local bound to the error would make
                # a frame -> error -> traceback -> frame cycle on every rejection.
                raise _open_error(CircuitOpenError, self.name, self._reject_state, seconds)
            return cast(T, self._fallback(
                _open_error(CircuitOpenError, self.name, self._reject_state, seconds),
                *args, **kwargs,
            ))
        else:
            try:
                ticket = self._admit()
            except CircuitOpenError as error:
                if self._fallback is None:
                    raise
                return cast(T, self._fallback(error, *args, **kwargs))
            mono = self._mono()  # a store round-trip in admission is not the call's time
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            if self._is_failure(exc):
                self._failed(ticket, mono)
            elif ticket & 1:
                self._probe_finished(ticket)  # neutral: frees the probe, no verdict
            raise
        if ticket & 1:
            self._succeeded(ticket, mono, result)
        elif self._records_successes:
            # A policy's plain success is one lock-free, C-level counter step
            # (tick), unless the call was slow or a hook must judge its result.
            tick = self._tick
            if tick is not None:
                if not self._timed:
                    tick()
                elif self._mono() >= mono + self._slow:
                    self._succeeded(ticket, mono, result)
                elif tick is not _NOOP:  # slow calls alone keep no successes
                    tick()
            elif (hook := self._hook_alone) is None:
                self._succeeded(ticket, mono, result)
            else:  # failure_if alone: PolicyEngine._succeeded's judgement, inlined
                try:
                    failed = True if hook(result) else False  # noqa: SIM210
                except Exception as broken:  # noqa: BLE001  (user code: contained)
                    failed = self._hook_raised(broken)
                if failed:
                    self._record_failure(ticket)
                elif (count := self._count_success) is None:
                    self._record_success(ticket)
                elif count is not _NOOP:
                    count()
        return result

    async def call_async(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """
        Await ``fn(*args, **kwargs)`` through the breaker.

        Store round-trips (at most one per ``cache_ttl``, and on transitions)
        run in a worker thread so that they never block the event loop.

        Raises:
            CircuitOpenError: the circuit rejects the call (``fn`` did not run).
            InvalidInputError: ``fn`` is not callable.
        """
        if not callable(fn):
            raise InvalidInputError(f"fn must be callable, got {show(fn)}")
        try:
            ticket = await self._admit_async()
        except CircuitOpenError as error:
            if self._fallback is None:
                raise
            value = self._fallback(error, *args, **kwargs)
            return cast(T, await value if inspect.isawaitable(value) else value)
        start = self._mono()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            if self._is_failure(exc):
                await _to_thread(self._failed, ticket, start)
            elif ticket & 1:
                self._probe_finished(ticket)
            raise
        await self._success_async(ticket, start, result)
        return result

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """
        Decorate ``fn`` (a plain or ``async`` function) so that every call goes through.

        Raises:
            InvalidInputError: ``fn`` is not callable.
        """
        if not callable(fn):
            raise InvalidInputError(f"a breaker decorates callables, got {show(fn)}")
        if inspect.iscoroutinefunction(fn):
            coroutine_fn = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await self.call_async(coroutine_fn, *args, **kwargs)

            return cast(Callable[P, T], async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:  # noqa: PLR0912  (inlined)
            # call(), inlined: one Python frame less on every decorated call.
            mono = self._mono()
            if mono < self._fresh_until and (gen := self._closed_gen) >= 0:
                ticket = gen << 1
            else:
                try:
                    ticket = self._admit()
                except CircuitOpenError as error:
                    if self._fallback is None:
                        raise
                    return cast(T, self._fallback(error, *args, **kwargs))
                mono = self._mono()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                if self._is_failure(exc):
                    self._failed(ticket, mono)
                elif ticket & 1:
                    self._probe_finished(ticket)
                raise
            if ticket & 1:
                self._succeeded(ticket, mono, result)
            elif self._records_successes:
                tick = self._tick
                if tick is not None:
                    if not self._timed:
                        tick()
                    elif self._mono() >= mono + self._slow:
                        self._succeeded(ticket, mono, result)
                    elif tick is not _NOOP:  # slow calls alone keep no successes
                        tick()
                elif (hook := self._hook_alone) is None:
                    self._succeeded(ticket, mono, result)
                else:  # failure_if alone: PolicyEngine._succeeded's judgement, inlined
                    try:
                        failed = True if hook(result) else False  # noqa: SIM210
                    except Exception as broken:  # noqa: BLE001  (user code: contained)
                        failed = self._hook_raised(broken)
                    if failed:
                        self._record_failure(ticket)
                    elif (count := self._count_success) is None:
                        self._record_success(ticket)
                    elif count is not _NOOP:
                        count()
            return result

        return wrapper

    def __enter__(self) -> CircuitBreaker:
        ticket = self._admit()
        _ACTIVE.set((*_ACTIVE.get(), (self, ticket, self._mono())))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        ticket, start = self._pop_ticket()
        if exc is None:
            if ticket & 1 or self._records_successes:
                self._succeeded(ticket, start, NO_RESULT)
        elif self._is_failure(exc):
            self._failed(ticket, start)
        elif ticket & 1:
            self._probe_finished(ticket)

    async def __aenter__(self) -> CircuitBreaker:
        ticket = await self._admit_async()
        _ACTIVE.set((*_ACTIVE.get(), (self, ticket, self._mono())))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        ticket, start = self._pop_ticket()
        if exc is None:
            await self._success_async(ticket, start, NO_RESULT)
        elif self._is_failure(exc):
            await _to_thread(self._failed, ticket, start)
        elif ticket & 1:
            self._probe_finished(ticket)

    async def _admit_async(self) -> int:
        if self._mono() < self._fresh_until:
            gen = self._closed_gen
            if gen >= 0:
                return gen << 1
        return await _to_thread(self._admit_slow)

    async def _success_async(self, ticket: int, start: float, result: object) -> None:
        if not (ticket & 1 or self._records_successes):
            return
        verdict = self._judge(ticket, start, result)  # cheap: judged on the loop
        if verdict is not None:
            await _to_thread(self._record_failure, ticket, verdict[1], verdict[0])
        elif ticket & 1:
            await _to_thread(self._record_success, ticket)
        else:
            self._record_success(ticket)  # no lock, no store: safe on the event loop

    def _pop_ticket(self) -> tuple[int, float]:
        stack = _ACTIVE.get()
        for i in range(len(stack) - 1, -1, -1):
            if stack[i][0] is self:
                _ACTIVE.set(stack[:i] + stack[i + 1 :])
                return stack[i][1], stack[i][2]
        raise InvalidInputError(f"breaker {self.name!r} exited a block it never entered")


# Names and instance ids are stored in the circuit document (name; probe holder
# and up to open_quorum - 1 trip reports): bounded so that, with open_quorum
# bounded too, no circuit document can outgrow the store's 1 MiB.
_MAX_NAME_BYTES = 64 * 1024


def _check_text(value: object, what: str, limit: int = MAX_ID_BYTES) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{what} must be a non-empty string, got {show(value)}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ConfigurationError(f"{what} must be valid UTF-8 text, got {show(value)}") from None
    if size > limit:
        raise ConfigurationError(f"{what} must be at most {limit} bytes of UTF-8")
    return value


def _circuit_key(name: object) -> str:
    """The document id of the circuit ``name`` (any non-empty text)."""
    text = _check_text(name, "a breaker name", _MAX_NAME_BYTES)
    try:
        return validate_id(encode_key(text))
    except InvalidInputError as exc:
        raise ConfigurationError(str(exc)) from None


async def _to_thread(fn: Callable[..., T], *args: Any) -> T:
    # Store I/O of async calls runs in a worker thread. asyncio is imported here,
    # not at module level, so that synchronous users (most processors) never pay
    # for importing it at cold start; in async code it is already loaded.
    import asyncio

    return await asyncio.to_thread(fn, *args)
