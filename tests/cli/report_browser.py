"""
Headless Chromium (Debian's ``chromium``) for the HTML report tests: load a
file, return the DOM after the page ran (if it could run anything) and the
console messages Chromium logged (CSP violations and script errors are among
them).

In CI (``CI=true``) a missing Chromium fails the test; elsewhere the test is
skipped, loudly, as the emulator tests are (tests/conftest.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
TIMEOUT = 90.0  # seconds for one page load, start-up included (2 shared cores)
_CONSOLE = re.compile(r":CONSOLE(?::\d+)?\]\s*(.*)")
_NAMES = ("chromium", "chromium-browser", "google-chrome")


def _missing(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"Chromium unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"CHROMIUM UNAVAILABLE, test skipped: {reason} (apt-get install chromium)")


def chromium_binary() -> str:
    """The Chromium executable (``CHROMIUM_BIN`` or on PATH), or skip/fail."""
    given = os.environ.get("CHROMIUM_BIN")
    found = given or next((p for p in map(shutil.which, _NAMES) if p), None)
    if not found:
        _missing("no chromium on PATH")
    return found


def base_command(binary: str, profile: str) -> list[str]:
    """Flags for one headless run (its own profile, so parallel runs do not share one)."""
    return [
        binary, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
        "--disable-extensions", "--disable-background-networking", "--hide-scrollbars",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
    ]


@dataclass(frozen=True)
class Loaded:
    """What Chromium made of a page: its DOM after load, and its console messages."""

    dom: str
    console: list[str]


def load(binary: str, page: Path) -> Loaded:
    """Load ``page`` in headless Chromium and dump its DOM."""
    with tempfile.TemporaryDirectory(prefix="h-chromium-") as profile:
        try:
            done = subprocess.run(
                [*base_command(binary, profile), "--dump-dom", page.resolve().as_uri()],
                capture_output=True, text=True, timeout=TIMEOUT, check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            _missing(f"{binary} did not run: {exc}")
    if done.returncode != 0 or "<html" not in done.stdout:
        _missing(f"{binary} exited {done.returncode}: {done.stderr[-2000:]}")
    console = [m.group(1) for m in map(_CONSOLE.search, done.stderr.splitlines()) if m]
    return Loaded(done.stdout, console)


def screenshot(binary: str, page: Path, out: Path, size: str = "1400,900") -> None:
    """Write a PNG of ``page`` to ``out``."""
    with tempfile.TemporaryDirectory(prefix="h-chromium-") as profile:
        subprocess.run(
            [*base_command(binary, profile), f"--window-size={size}",
             f"--screenshot={out}", page.resolve().as_uri()],
            capture_output=True, timeout=TIMEOUT, check=True, stdin=subprocess.DEVNULL,
        )


class Dom(HTMLParser):
    """The parts of a dumped DOM the tests look at: tags, attributes and text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Remember every element."""
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        """Remember every text node (the text a person reads)."""
        self.text.append(data)

    def count(self, tag: str) -> int:
        """How many ``tag`` elements the page has."""
        return sum(1 for t, _ in self.tags if t == tag)

    def cells(self) -> dict[tuple[str, str], str]:
        """``(date, phase) -> state`` of the grid's cells."""
        return {
            (str(a["data-date"]), str(a["data-phase"])): str(a["data-state"])
            for t, a in self.tags if t == "td" and "data-state" in a
        }

    def marked(self) -> bool:
        """Whether the page's root element carries the sample's ``data-pwned`` marker."""
        return any(t == "html" and "data-pwned" in a for t, a in self.tags)

    def attributes_named(self, prefix: str) -> list[str]:
        """Every attribute whose name starts with ``prefix`` (``on`` finds handlers)."""
        return [name for _, a in self.tags for name in a if name.startswith(prefix)]
