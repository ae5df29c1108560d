"""
Values an attacker or a careless caller could pass, shared by the hostile-input
modules: self-referential and 10 000-deep containers, integers beyond int64
and beyond 4300 digits, NaN, infinities, extreme timedeltas and dates, None,
bools, a megabyte of text, lone surrogates, wrong types.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

__all__ = ["HOSTILE", "HOSTILE_SETTINGS", "hostile", "nested", "self_dict", "self_list"]


def nested(depth: int, wrap: Callable[[Any], Any]) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = wrap(value)
    return value


def self_list() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


def self_dict() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


HOSTILE: list[Any] = [
    self_list(),
    self_dict(),
    nested(10_000, lambda v: [v]),
    nested(10_000, lambda v: {"k": v}),
    nested(10_000, lambda v: (v,)),
    nested(10_000, lambda v: frozenset([v])),
    2**63,
    -(2**63) - 1,
    10**400,
    10**5000,
    -1,
    0,
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    8.64e13,
    dt.timedelta.max,
    dt.timedelta.min,
    dt.timedelta(0),
    dt.timedelta(days=999_999_999),
    None,
    True,
    False,
    "x" * 1_000_000,
    "",
    " ",
    "\ud800",
    "a/b",
    "__reserved__",
    "9999-12-31",
    "0001-01-01",
    dt.date.max,
    dt.date.min,
    dt.datetime.max,
    b"bytes",
    object(),
    {1, 2},
    [],
    {},
]
hostile = st.one_of(
    st.sampled_from(HOSTILE),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.timedeltas(),
)
HOSTILE_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
