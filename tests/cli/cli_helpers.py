"""Shared helpers of the CLI tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    """What one ``main(argv)`` call returned and printed."""

    status: int
    out: str
    err: str


Cli = Callable[..., Run]
