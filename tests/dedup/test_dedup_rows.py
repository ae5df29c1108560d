"""deduplicate_rows: the winner rule, null keys, unhashable keys, order, and errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from otel_helpers import metric_points
from pipeline_reliability import InvalidInputError
from pipeline_reliability.dedup import deduplicate_rows

T0 = datetime(2026, 1, 31, 10, tzinfo=UTC)
T1 = datetime(2026, 1, 31, 11, tzinfo=UTC)


def r(**fields: Any) -> dict[str, Any]:
    """A row."""
    return fields


def test_latest_order_by_wins_and_count_is_reported() -> None:
    """keep="last" keeps the greatest order_by value per key and counts the losers."""
    rows = [r(k=1, at=T1, v="new"), r(k=1, at=T0, v="old"), r(k=2, at=T0, v="only")]

    result = deduplicate_rows(rows, "k", order_by="at")

    assert [row["v"] for row in result.rows] == ["new", "only"]
    assert result.dropped == 1
    assert result.null_key_rows == ()


def test_keep_first_keeps_the_least_order_by_value() -> None:
    """keep="first" keeps the least order_by value: the end a stable sort puts first."""
    rows = [r(k=1, at=T1, v="new"), r(k=1, at=T0, v="old")]

    result = deduplicate_rows(rows, "k", order_by="at", keep="first")

    assert [row["v"] for row in result.rows] == ["old"]


def test_ties_go_to_the_later_row_for_last_and_the_earlier_for_first() -> None:
    """Equal order_by values are broken by position, like a stable sort."""
    rows = [r(k=1, at=T0, v="a"), r(k=1, at=T0, v="b"), r(k=1, at=T0, v="c")]

    assert deduplicate_rows(rows, "k", "at").rows[0]["v"] == "c"
    assert deduplicate_rows(rows, "k", "at", keep="first").rows[0]["v"] == "a"


def test_without_order_by_position_decides() -> None:
    """Without order_by the last (or first) row of each key wins."""
    rows = [r(k=1, v="a"), r(k=2, v="x"), r(k=1, v="b")]

    assert [x["v"] for x in deduplicate_rows(rows, "k").rows] == ["b", "x"]
    assert [x["v"] for x in deduplicate_rows(rows, "k", keep="first").rows] == ["a", "x"]


def test_survivors_keep_the_order_of_their_keys_first_appearance() -> None:
    """The winner of a key sits where the key first appeared, not where the winner was."""
    rows = [r(k="b", at=1), r(k="a", at=1), r(k="b", at=2), r(k="c", at=1), r(k="a", at=0)]

    result = deduplicate_rows(rows, "k", "at")

    assert [(x["k"], x["at"]) for x in result.rows] == [("b", 2), ("a", 1), ("c", 1)]


def test_none_order_by_sorts_before_every_value() -> None:
    """A None (or missing) order_by value loses to any value under keep="last"."""
    rows = [r(k=1, at=T0, v="dated"), r(k=1, at=None, v="none"), r(k=1, v="missing")]

    assert deduplicate_rows(rows, "k", "at").rows[0]["v"] == "dated"
    assert deduplicate_rows(rows, "k", "at", keep="first").rows[0]["v"] == "none"


def test_multi_field_order_by_compares_field_by_field() -> None:
    """order_by fields compare lexicographically, None first within each field."""
    rows = [r(k=1, a=1, b=None, v="x"), r(k=1, a=1, b=5, v="y"), r(k=1, a=0, b=9, v="z")]

    assert deduplicate_rows(rows, "k", ("a", "b")).rows[0]["v"] == "y"


def test_null_keys_are_reported_never_merged_and_kept_in_place() -> None:
    """Rows with a None or missing key field stay, unmerged, and are listed (F8)."""
    rows = [r(k=None, j=1), r(k=1, j=1), r(k=None, j=1), r(j=1), r(k=1, j=1)]

    result = deduplicate_rows(rows, ("k", "j"))

    assert result.rows == (rows[0], rows[4], rows[2], rows[3])
    assert result.null_key_rows == (rows[0], rows[2], rows[3])
    assert result.dropped == 1


def test_null_keys_drop_leaves_them_out_but_reports_them() -> None:
    """null_keys="drop" removes null-key rows from rows and still lists them."""
    rows = [r(k=None), r(k=1), r(k=None)]

    result = deduplicate_rows(rows, "k", null_keys="drop")

    assert result.rows == (rows[1],)
    assert result.null_key_rows == (rows[0], rows[2])
    assert result.dropped == 0


def test_null_keys_reject_raises_before_returning_anything() -> None:
    """null_keys="reject" refuses the batch with InvalidInputError."""
    with pytest.raises(InvalidInputError, match="null key"):
        deduplicate_rows([r(k=1), r(k=None)], "k", null_keys="reject")


def test_unhashable_key_values_compare_by_content() -> None:
    """Lists, dicts and sets in key fields are compared by a canonical form, not a crash."""
    rows = [
        r(k=[1, 2], m={"a": [1]}, s={1, 2}, v=1),
        r(k=(1, 2), m={"a": [1]}, s=frozenset({2, 1}), v=2),
        r(k=[1, 2], m={"a": [2]}, s={1, 2}, v=3),
    ]

    result = deduplicate_rows(rows, ("k", "m", "s"))

    assert [x["v"] for x in result.rows] == [2, 3]
    assert result.dropped == 1


def test_unhashable_and_hashable_keys_share_one_key_space() -> None:
    """A list key met after an equal tuple key (and vice versa) is the same key."""
    rows = [r(k=(1, 2), at=1), r(k=[1, 2], at=2), r(k=(1, 2), at=0)]

    result = deduplicate_rows(rows, "k", "at")

    assert result.rows == (rows[1],)
    assert result.dropped == 2


def test_mixed_type_order_by_raises_invalid_input() -> None:
    """order_by values of one key that cannot be compared raise InvalidInputError."""
    with pytest.raises(InvalidInputError, match="cannot be compared"):
        deduplicate_rows([r(k=1, at=1), r(k=1, at="x")], "k", "at")
    naive = datetime(2026, 1, 31, 10)
    with pytest.raises(InvalidInputError, match="cannot be compared"):
        deduplicate_rows([r(k=1, at=T0), r(k=1, at=naive)], "k", "at")


def test_rows_that_are_not_mappings_raise_invalid_input() -> None:
    """A row that is not a mapping is an InvalidInputError, not a TypeError."""
    with pytest.raises(InvalidInputError, match="mappings"):
        deduplicate_rows([r(k=1), ["k", 1]], "k")  # type: ignore[type-var]


def test_any_iterable_is_read_once_as_a_stream() -> None:
    """A generator is consumed once and gives the same result as a list."""
    rows = [r(k=i % 3, at=i) for i in range(10)]
    consumed: list[int] = []

    def stream() -> Iterator[dict[str, Any]]:
        for row in rows:
            consumed.append(row["at"])
            yield row

    result = deduplicate_rows(stream(), "k", "at")

    assert result == deduplicate_rows(rows, "k", "at")
    assert consumed == list(range(10))
    assert result.dropped == 7


def test_errors_raised_by_the_input_iterable_propagate_unchanged() -> None:
    """A TypeError from the iterable itself is not mistaken for a bad row."""

    def stream() -> Iterator[dict[str, Any]]:
        yield r(k=1)
        raise TypeError("source broke")

    with pytest.raises(TypeError, match="source broke"):
        deduplicate_rows(stream(), "k")


def test_the_same_row_object_twice_counts_as_a_duplicate() -> None:
    """Passing one dict twice keeps it once and counts one drop."""
    row = r(k=1, at=1)

    result = deduplicate_rows([row, row, row], "k", "at")

    assert result.rows == (row,)
    assert result.dropped == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key": ()}, "at least one field"),
        ({"key": ("a", "a")}, "twice"),
        ({"key": "a", "keep": "middle"}, "keep"),
        ({"key": "a", "null_keys": "ignore"}, "null_keys"),
        ({"key": ["a", ""]}, "non-empty"),
    ],
)
def test_bad_arguments_raise_invalid_input(kwargs: dict[str, Any], message: str) -> None:
    """Bad key, keep or null_keys arguments raise InvalidInputError naming the problem."""
    with pytest.raises(InvalidInputError, match=message):
        deduplicate_rows([r(a=1)], **kwargs)


def test_dropped_rows_are_counted_in_telemetry(metric_reader: Any) -> None:
    """Each call adds its dropped rows to the dedup.rows_deduplicated counter."""

    def total() -> int:
        return sum(
            point.value
            for point in metric_points(
                metric_reader, "pipeline_reliability.dedup.rows_deduplicated"
            )
        )

    before = total()
    deduplicate_rows([r(k=1), r(k=1), r(k=1)], "k")

    assert total() - before == 2
