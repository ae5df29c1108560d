"""
The one deduplication policy: which row wins when several share a key.

``deduplicate_rows`` applies it in Python before a write and
``BigQueryWriter.upsert`` renders the same policy into the MERGE, so the
pre-write pass and the table can never disagree about the winner (F8: in
production one kept the first row and the other the latest).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .._validate import describe
from ..errors import InvalidInputError

__all__ = ["DedupPolicy", "Keep", "NullKeys", "check_null_keys", "quote_ident"]

Keep = Literal["first", "last"]
"""Which end of the ``order_by`` order wins: ``"last"`` (the newest) or ``"first"``."""

NullKeys = Literal["report", "drop", "reject"]
"""What to do with rows that have a null (``None`` or missing) key field."""

_KEEP = ("first", "last")
_NULL_KEYS = ("report", "drop", "reject")
# Column names that can be put in generated SQL between backticks without escaping.
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,299}")


def _fields(value: object, what: str, *, required: bool) -> tuple[str, ...]:
    if value is None:
        if required:
            raise InvalidInputError(f"{what} must name at least one field")
        return ()
    if isinstance(value, str):
        fields: tuple[object, ...] = (value,)
    elif isinstance(value, Sequence):
        fields = tuple(value)
    else:
        raise InvalidInputError(f"{what} must be a field name or a sequence of them")
    if required and not fields:
        raise InvalidInputError(f"{what} must name at least one field")
    for field in fields:
        if not isinstance(field, str) or not field:
            raise InvalidInputError(
                f"{what} fields must be non-empty strings, got {describe(field)}"
            )
    names = tuple(str(field) for field in fields)
    if len(set(names)) != len(names):
        raise InvalidInputError(f"{what} names a field twice: {list(names)}")
    return names


@dataclass(frozen=True, slots=True)
class DedupPolicy:
    """
    A validated (key, order_by, keep) triple.

    The winner among rows with equal keys is the one a *stable* sort by
    ``order_by`` puts last (``keep="last"``) or first (``keep="first"``):
    the greatest (or least) ``order_by`` value, ``None`` sorting before every
    value, and among equal values the later (or earlier) row. Without
    ``order_by`` that is simply the last (or first) row of each key.

    Attributes:
        key: The key fields, in order.
        order_by: The ordering fields, compared lexicographically (may be empty).
        keep: ``"last"`` or ``"first"``.
    """

    key: tuple[str, ...]
    order_by: tuple[str, ...]
    keep: Keep

    @classmethod
    def build(
        cls,
        key: str | Sequence[str],
        order_by: str | Sequence[str] | None = None,
        keep: str = "last",
    ) -> DedupPolicy:
        """
        Validate the arguments of ``deduplicate_rows`` / ``upsert``.

        Raises:
            InvalidInputError: empty or repeated field names, or an unknown ``keep``.
        """
        if not _is_str(keep) or keep not in _KEEP:
            raise InvalidInputError(f"keep must be 'first' or 'last', got {describe(keep)}")
        return cls(
            _fields(key, "key", required=True),
            _fields(order_by, "order_by", required=False),
            "last" if keep == "last" else "first",
        )

    def check_sql_names(self) -> None:
        """
        Refuse field names that cannot be quoted into SQL as plain column names.

        Raises:
            InvalidInputError: a key or order_by field is not ``[A-Za-z_][A-Za-z0-9_]*``.
        """
        for field in (*self.key, *self.order_by):
            if not _FIELD.fullmatch(field):
                raise InvalidInputError(f"{field!r} is not a plain BigQuery column name")

    def sql_window_order(self) -> str | None:
        """
        The policy as a window ``ORDER BY`` whose first row is the winner, or
        ``None`` without ``order_by``. ``DESC NULLS LAST`` (``ASC NULLS FIRST``
        for ``keep="first"``) is Python's "``None`` sorts before every value".
        """
        if not self.order_by:
            return None
        how = "DESC NULLS LAST" if self.keep == "last" else "ASC NULLS FIRST"
        return ", ".join(f"{quote_ident(f)} {how}" for f in self.order_by)

    def sql_wins(self, new: str, old: str) -> str:
        """
        A SQL condition: the row aliased ``new`` beats the row aliased ``old``.

        ``old`` is the row already in the table, which counts as *earlier*
        than the batch: on equal ``order_by`` values the new row wins for
        ``keep="last"`` and loses for ``keep="first"``, exactly as between two
        rows of one batch in Python. Values compare field by field, ``NULL``
        below every value.
        """
        # Built from the last field inwards: "beats on this field, or ties on it
        # and wins on the rest". Past the last field, a full tie: the new row
        # wins for keep="last" (TRUE) and loses for keep="first" (FALSE).
        condition = "TRUE" if self.keep == "last" else "FALSE"
        for field in reversed(self.order_by):
            n, o = f"{new}.{quote_ident(field)}", f"{old}.{quote_ident(field)}"
            if self.keep == "last":
                beats = f"({n} IS NOT NULL AND ({o} IS NULL OR {n} > {o}))"
            else:
                beats = f"({o} IS NOT NULL AND ({n} IS NULL OR {n} < {o}))"
            ties = f"(({n} IS NULL AND {o} IS NULL) OR {n} = {o})"
            if condition == "TRUE":
                condition = f"({beats} OR {ties})"
            elif condition != "FALSE":
                condition = f"({beats} OR ({ties} AND {condition}))"
            else:
                condition = beats
        return condition


def _is_str(value: object) -> bool:
    # Typed ``str``, but callers may pass anything: ``in`` on an unhashable or
    # odd value must not be what decides.
    return isinstance(value, str)


def quote_ident(name: str) -> str:
    """Quote a column name for BigQuery (backticks, escaped)."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def check_null_keys(null_keys: str, allowed: Sequence[str] = _NULL_KEYS) -> NullKeys:
    """Validate a ``null_keys`` option against ``allowed``."""
    if not _is_str(null_keys) or null_keys not in allowed:
        raise InvalidInputError(
            f"null_keys must be one of {list(allowed)}, got {describe(null_keys)}"
        )
    if null_keys == "reject":
        return "reject"
    return "drop" if null_keys == "drop" else "report"
