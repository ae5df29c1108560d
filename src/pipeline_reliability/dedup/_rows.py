"""
``deduplicate_rows``: one winner per key, decided the same way every time.

The hot loop is a plain dict pass that stays on C-level operations
(``itemgetter``, ``dict.setdefault``, one comparison per duplicate). Anything
unusual (a null or missing field, an unhashable key, a ``None`` or
incomparable ``order_by`` value, a row that is not a mapping) makes that loop
raise, and the one row is then handled by the careful path before the fast
loop resumes. Clean input therefore costs no more than a hand-written pass.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .._telemetry import counter, span
from .._validate import describe
from ..errors import InvalidInputError
from ._policy import DedupPolicy, NullKeys, check_null_keys

__all__ = ["DedupResult", "canonical_key", "dedupe", "deduplicate_rows"]

M = TypeVar("M", bound=Mapping[str, Any])


@dataclass(frozen=True, slots=True)
class DedupResult(Generic[M]):
    """
    What :func:`deduplicate_rows` kept and what it found.

    Attributes:
        rows: The surviving rows (the input objects themselves, not copies),
            in the order in which their key *first appeared* in the input.
            With ``null_keys="report"`` the null-key rows are among them, at
            their own positions.
        dropped: How many rows lost to another row with the same key.
        null_key_rows: Every row with a null (``None`` or missing) key field,
            in input order. They are never merged with each other.

    .. versionadded:: 0.1.0
    """

    rows: tuple[M, ...]
    dropped: int
    null_key_rows: tuple[M, ...]


class _Tag:
    """A private marker inside canonical keys: no user value can ever equal it."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_MAPPING = _Tag("mapping")
# How deeply a key value may nest lists, tuples, sets and mappings. Far beyond
# any real key; a self-referential value reaches it at once, instead of
# exhausting the interpreter's stack (RecursionError).
MAX_KEY_DEPTH = 100


def canonical_key(value: Any) -> Any:
    """
    Return a hashable stand-in for ``value`` that is equal exactly when the values are.

    Lists and tuples become tuples (a list and a tuple with equal items are the
    same key, as they are once written as JSON or to BigQuery), sets become
    frozensets, mappings become a tagged frozenset of their items, ``bytearray``
    becomes ``bytes``; nested values are converted recursively. A hashable
    value maps to something equal to itself, so raw and canonical keys can
    share one dict.

    Raises:
        TypeError: ``value`` contains an unhashable object of another type,
            or nests more than :data:`MAX_KEY_DEPTH` levels deep (a value that
            contains itself always does).

    .. versionadded:: 0.1.0
    """
    return _canonical(value, MAX_KEY_DEPTH)


def _canonical(value: Any, depth: int) -> Any:
    if depth < 0:
        raise TypeError(f"a key value nests more than {MAX_KEY_DEPTH} levels deep")
    if isinstance(value, list | tuple):
        return tuple(_canonical(item, depth - 1) for item in value)
    if isinstance(value, Mapping):
        pairs = ((_canonical(k, depth - 1), _canonical(v, depth - 1)) for k, v in value.items())
        return (_MAPPING, frozenset(pairs))
    if isinstance(value, set | frozenset):
        return frozenset(_canonical(item, depth - 1) for item in value)
    if isinstance(value, bytearray):
        return bytes(value)
    hash(value)
    return value


class _SourceError(Exception):
    """The input iterable itself raised; carries the original as ``__cause__``."""


class _Counted(Generic[M]):
    """Iterate any iterable, count the rows, and keep its own errors apart."""

    def __init__(self, rows: Iterable[M]) -> None:
        self._rows = rows
        self.count = 0

    def __iter__(self) -> Iterator[M]:
        n = 0
        try:
            for n, row in enumerate(self._rows, 1):  # noqa: B007
                yield row
        except Exception as exc:
            # Without this, a TypeError raised *by the iterable* would look like
            # one raised by the loop body and be blamed on the previous row.
            raise _SourceError from exc
        finally:
            self.count = n


def _no_order(_row: Any) -> int:
    return 0


class _Pass(Generic[M]):
    """The state of one deduplication pass, and its careful per-row path."""

    def __init__(self, policy: DedupPolicy, null_keys: NullKeys) -> None:
        self.policy = policy
        self.null_keys = null_keys
        self.best: dict[Any, M] = {}
        self.nulls: list[M] = []

    def null_row(self, row: M) -> None:
        """Take a row with a null key field: never merged, always reported."""
        if self.null_keys == "reject":
            raise InvalidInputError(
                f"a row has a null key field (key {list(self.policy.key)}): {_preview(row)}"
            )
        self.nulls.append(row)
        if self.null_keys == "report":
            # A fresh object as its dict key: unique, and keeps the row's position.
            self.best[object()] = row

    def careful(self, row: Any) -> None:
        """Handle the one row that made the fast loop raise."""
        if not isinstance(row, Mapping):
            raise InvalidInputError(f"rows must be mappings, got {type(row).__name__}")
        key = self.policy.key
        values = tuple(row.get(field) for field in key)
        raw = values[0] if len(key) == 1 else values
        try:
            if self.best.get(raw) is row:
                # The fast loop inserted the row before it failed: start over.
                del self.best[raw]
            dict_key = raw
        except (TypeError, RecursionError):
            # Unhashable, or hashable but too deep to hash or compare.
            dict_key = None
        if any(value is None for value in values):
            self.null_row(row)
            return
        if dict_key is None:
            try:
                dict_key = canonical_key(raw)
            except TypeError as exc:
                raise InvalidInputError(f"key {list(key)} holds an unusable value: {exc}") from exc
        try:
            current = self.best.setdefault(dict_key, row)
        except RecursionError as exc:  # equal hashes, and too deep to compare
            raise InvalidInputError(f"key {list(key)} holds a value nested too deeply") from exc
        if current is not row and self._wins(row, current):
            self.best[dict_key] = row

    def _wins(self, row: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
        new, old = self._sortable(row), self._sortable(current)
        try:
            return new >= old if self.policy.keep == "last" else new < old
        except (TypeError, RecursionError) as exc:
            raise InvalidInputError(
                f"order_by {list(self.policy.order_by)} values cannot be compared: "
                f"{_preview(row)} vs {_preview(current)} ({exc})"
            ) from exc

    def _sortable(self, row: Mapping[str, Any]) -> tuple[tuple[bool, Any], ...]:
        # (False, None) sorts before (True, anything): None is the smallest value.
        return tuple(
            (value is not None, value) for value in (row.get(f) for f in self.policy.order_by)
        )


def _preview(row: Any) -> str:
    return describe(row)


def dedupe(rows: Iterable[M], policy: DedupPolicy, null_keys: NullKeys) -> DedupResult[M]:
    """
    Run one pass of ``policy`` over ``rows`` (arguments already validated).

    Errors raised by the ``rows`` iterable itself propagate unchanged.
    """
    state: _Pass[M] = _Pass(policy, null_keys)
    if isinstance(rows, list | tuple):
        _run(rows, state)
        total = len(rows)
    else:
        counted = _Counted(rows)
        source_error: BaseException | None = None
        try:
            _run(counted, state)
        except _SourceError as exc:
            source_error = exc.__cause__
        if source_error is not None:
            # Raised outside the handler so that it carries no trace of _SourceError.
            raise source_error
        total = counted.count
    kept = tuple(state.best.values())
    nulls = tuple(state.nulls)
    dropped = total - len(kept) - (len(nulls) if null_keys == "drop" else 0)
    return DedupResult(kept, dropped, nulls)


def _run(rows: Iterable[M], state: _Pass[M]) -> None:
    policy = state.policy
    best = state.best
    setdefault = best.setdefault
    getkey: Callable[[Any], Any] = operator.itemgetter(*policy.key)
    has_null: Callable[[Any, None], bool] = (
        operator.is_ if len(policy.key) == 1 else operator.contains
    )
    getorder: Callable[[Any], Any] = (
        operator.itemgetter(*policy.order_by) if policy.order_by else _no_order
    )
    wins: Callable[[Any, Any], bool] = operator.ge if policy.keep == "last" else operator.lt
    it = iter(rows)
    row: Any = None
    while True:
        try:
            for row in it:
                key = getkey(row)
                current = setdefault(key, row)
                if current is not row:
                    if wins(getorder(row), getorder(current)):
                        best[key] = row
                elif has_null(key, None):
                    del best[key]
                    state.null_row(row)
            break
        except (TypeError, KeyError, RecursionError):
            # Missing field, unhashable key, None or mixed-type order_by, not a
            # mapping; or a value nested too deeply (or self-referential) to
            # hash or compare.
            state.careful(row)


def _names(value: object, what: str) -> Any:
    """``value`` as ``DedupPolicy.build`` takes it: ``None``, a name, or a tuple of names."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, Iterable):
        raise InvalidInputError(f"{what} must be a field name or several, got {describe(value)}")
    return tuple(value)


def deduplicate_rows(
    rows: Iterable[M],
    key: str | Iterable[str],
    order_by: str | Iterable[str] | None = None,
    keep: str = "last",
    *,
    null_keys: str = "report",
) -> DedupResult[M]:
    """
    Keep one row per key, choosing the winner deterministically.

    The winner among rows with equal keys is the row that a *stable* sort by
    ``order_by`` would put last (``keep="last"``: the newest) or first
    (``keep="first"``): the greatest (least) ``order_by`` value, compared
    field by field, with ``None`` (or a missing field) sorting before every
    value; among rows with equal ``order_by`` values, the later (earlier) row
    in the input. Without ``order_by``, simply the last (first) row of each
    key. ``BigQueryWriter.upsert`` applies the same rule in its MERGE.

    Survivors keep the order in which their key *first appeared* in the input.

    Rows whose key has a null field (``None`` or missing) are never merged with
    each other or with anything: they are listed in ``null_key_rows`` and,
    depending on ``null_keys``, kept in ``rows`` as they are (``"report"``),
    left out of ``rows`` (``"drop"``), or refused (``"reject"``).

    Key values that are unhashable (lists, dicts, sets) are compared by a
    canonical form (:func:`canonical_key`): equal content, equal key.

    ``rows`` may be any iterable of mappings; it is read once, and only the
    current winner of each key is held in memory. It is fastest on a list.

    Args:
        rows: The rows.
        key: The key field, or several.
        order_by: The field (or fields) deciding the winner, or ``None``.
        keep: ``"last"`` (default) or ``"first"``.
        null_keys: ``"report"`` (default), ``"drop"`` or ``"reject"``.

    Returns:
        The survivors, the number of rows dropped, and the null-key rows.

    Raises:
        InvalidInputError: bad arguments; a row that is not a mapping; a
            null key with ``null_keys="reject"``; ``order_by`` values of one
            key that cannot be compared (e.g. a ``str`` and an ``int``, or a
            naive and an aware ``datetime``); a key value that cannot be
            made hashable.

    Example::

        result = deduplicate_rows(rows, key=("game_date", "player"), order_by="processed_at")
        save(result.rows)

    .. versionadded:: 0.1.0
    """
    if not isinstance(rows, Iterable):
        raise InvalidInputError(f"rows must be an iterable of mappings, got {describe(rows)}")
    policy = DedupPolicy.build(_names(key, "key"), _names(order_by, "order_by"), keep)
    mode = check_null_keys(null_keys)
    with span("dedup", "rows", lambda: {"dedup.key": ",".join(policy.key)}) as current:
        result = dedupe(rows, policy, mode)
        if current.is_recording():
            current.set_attributes(
                {
                    "dedup.kept": len(result.rows),
                    "dedup.dropped": result.dropped,
                    "dedup.null_key_rows": len(result.null_key_rows),
                }
            )
    if result.dropped:
        counter("dedup.rows_deduplicated", "Rows dropped as duplicates before a write").add(
            result.dropped
        )
    return result
