"""Hypothesis properties of deduplicate_rows (issue 6 acceptance)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pipeline_reliability.dedup import deduplicate_rows
from pipeline_reliability.dedup._rows import canonical_key

KEY = ("a", "b")
# Small domains so keys collide often; lists, tuples and dicts exercise the
# canonical form, None the null-key rule.
key_values = st.one_of(
    st.none(),
    st.integers(0, 3),
    st.sampled_from(["x", "y"]),
    st.lists(st.integers(0, 1), max_size=2),
    st.tuples(st.integers(0, 1)),
    st.dictionaries(st.sampled_from(["p", "q"]), st.integers(0, 1), max_size=2),
)
order_values = st.one_of(st.none(), st.integers(-3, 3))


@st.composite
def batches(draw: st.DrawFn, *, distinct_order: bool = False) -> list[dict[str, Any]]:
    """Rows with colliding keys; with ``distinct_order``, unique non-null order_by values."""
    n = draw(st.integers(0, 25))
    if distinct_order:
        orders: list[Any] = draw(st.lists(st.integers(), min_size=n, max_size=n, unique=True))
    else:
        orders = draw(st.lists(order_values, min_size=n, max_size=n))
    rows = []
    for i in range(n):
        row = {"a": draw(key_values), "b": draw(key_values), "at": orders[i], "i": i}
        if draw(st.booleans()) and draw(st.booleans()):
            del row["b"]  # a missing field is a null
        rows.append(row)
    return rows


def key_of(row: dict[str, Any]) -> Any:
    """The key as deduplicate_rows compares it."""
    return canonical_key(tuple(row.get(f) for f in KEY))


def has_null(row: dict[str, Any]) -> bool:
    """Whether the row's key has a null field."""
    return any(row.get(f) is None for f in KEY)


def sortable(row: dict[str, Any]) -> tuple[bool, Any]:
    """The documented order: None before every value."""
    return (row.get("at") is not None, row.get("at"))


def reference(rows: list[dict[str, Any]], keep: str) -> list[dict[str, Any]]:
    """The specification: stable sort by order_by, keep the last (first) row per key."""
    winners: dict[Any, dict[str, Any]] = {}
    for row in sorted(rows, key=sortable):  # sorted() is stable
        if has_null(row):
            continue
        if keep == "last":
            winners[key_of(row)] = row
        else:
            winners.setdefault(key_of(row), row)
    return list(winners.values())


@given(batches(), st.sampled_from(["first", "last"]))
def test_dedup_of_the_output_changes_nothing(rows: list[dict[str, Any]], keep: str) -> None:
    """Idempotent: deduplicating the survivors again keeps all of them, in order."""
    once = deduplicate_rows(rows, KEY, "at", keep)
    twice = deduplicate_rows(once.rows, KEY, "at", keep)

    assert twice.rows == once.rows
    assert twice.dropped == 0


@given(batches(), st.sampled_from(["first", "last"]))
def test_output_keys_are_unique(rows: list[dict[str, Any]], keep: str) -> None:
    """No two surviving rows with a non-null key share that key."""
    result = deduplicate_rows(rows, KEY, "at", keep)
    keys = [key_of(row) for row in result.rows if not has_null(row)]

    assert len(keys) == len(set(keys))


@given(batches(), st.sampled_from(["first", "last"]))
def test_each_winner_is_the_extreme_of_its_group(rows: list[dict[str, Any]], keep: str) -> None:
    """Each winner has the max (keep="last") or min (keep="first") order_by of its key."""
    result = deduplicate_rows(rows, KEY, "at", keep)
    pick = max if keep == "last" else min

    for winner in result.rows:
        if has_null(winner):
            continue
        group = [row for row in rows if not has_null(row) and key_of(row) == key_of(winner)]
        assert sortable(winner) == pick(sortable(row) for row in group)


@given(batches(), st.sampled_from(["first", "last"]))
def test_winners_match_the_stable_sort_specification(
    rows: list[dict[str, Any]], keep: str
) -> None:
    """The winners are exactly those of "stable sort by order_by, keep last/first per key"."""
    result = deduplicate_rows(rows, KEY, "at", keep)
    winners = [row for row in result.rows if not has_null(row)]

    assert sorted(row["i"] for row in winners) == sorted(row["i"] for row in reference(rows, keep))


@given(batches(distinct_order=True), st.randoms(), st.sampled_from(["first", "last"]))
def test_a_permutation_with_distinct_order_values_keeps_the_same_winners(
    rows: list[dict[str, Any]], rng: Any, keep: str
) -> None:
    """With distinct order_by values the input order cannot change the winners."""
    shuffled = list(rows)
    rng.shuffle(shuffled)

    first = deduplicate_rows(rows, KEY, "at", keep)
    second = deduplicate_rows(shuffled, KEY, "at", keep)

    assert {row["i"] for row in first.rows} == {row["i"] for row in second.rows}


@given(batches(), st.sampled_from(["first", "last"]), st.sampled_from(["report", "drop"]))
def test_null_key_rows_are_never_merged(
    rows: list[dict[str, Any]], keep: str, null_keys: str
) -> None:
    """Every null-key row is reported, and kept in place unless dropped on request."""
    result = deduplicate_rows(rows, KEY, "at", keep, null_keys=null_keys)
    nulls = [row for row in rows if has_null(row)]

    assert list(result.null_key_rows) == nulls
    kept_nulls = [row for row in result.rows if has_null(row)]
    assert kept_nulls == (nulls if null_keys == "report" else [])
    non_null = [row for row in rows if not has_null(row)]
    assert result.dropped == len(non_null) - len({key_of(row) for row in non_null})


@given(batches(), st.sampled_from(["first", "last"]))
def test_survivors_are_in_order_of_first_appearance(
    rows: list[dict[str, Any]], keep: str
) -> None:
    """Survivors are ordered by where their key first appeared (null rows: their own place)."""
    first_seen: dict[Any, int] = {}
    for index, row in enumerate(rows):
        if not has_null(row):
            first_seen.setdefault(key_of(row), index)

    result = deduplicate_rows(rows, KEY, "at", keep)
    places = [row["i"] if has_null(row) else first_seen[key_of(row)] for row in result.rows]

    assert places == sorted(places)
