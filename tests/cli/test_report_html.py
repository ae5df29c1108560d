"""
The ``report`` page in a real browser (headless Chromium, Debian's package):
it loads without console errors, shows the right cell for a known state, and
a state whose processor names, metadata and error texts carry HTML and script
renders them as text and runs nothing (strict CSP, no inline handlers).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import report_sample
from report_browser import Dom, chromium_binary, load, screenshot

from pipeline_reliability.cli._report_html import CSS, content_security_policy, render_html
from pipeline_reliability.ops._day import read_day
from pipeline_reliability.ops._report import DayReport, build_report


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium executable (skipped loudly here, a failure in CI)."""
    return chromium_binary()


def _report(hostile: bool) -> DayReport:
    tracker, ledger, clock = report_sample.build(hostile=hostile)
    days = [read_day(tracker, d, ledger=ledger) for d in report_sample.DATES]
    return build_report(days, generated_at=clock.now(), title="Sample pipeline")


def _page(tmp_path: Path, text: str, name: str = "report.html") -> Path:
    page = tmp_path / name
    page.write_text(text, encoding="utf-8")
    return page


# -- without a browser: the page's shape -------------------------------------------------


def test_policy_allows_only_the_page_own_style_sheet() -> None:
    policy = content_security_policy()
    assert policy.startswith("default-src 'none'; style-src 'sha256-")
    assert "unsafe-inline" not in policy
    assert "script-src" not in policy
    page = render_html(_report(hostile=False))
    assert f"<style>{CSS}</style>" in page  # the hash is of exactly this text
    assert page.count("<style>") == 1
    assert "<script" not in page
    assert not re.search(r"\son[a-z]+=", page)  # no inline handler anywhere
    assert not re.search(r"\s(src|href)=", page)  # no external asset


def test_every_hostile_text_is_escaped_in_the_source() -> None:
    page = render_html(_report(hostile=True), expand=True)
    for text in report_sample.HOSTILE:
        assert text not in page
    assert "&lt;script&gt;document.documentElement" in page
    assert "&quot;&gt;&lt;img src=x onerror=" in page


# -- in Chromium -------------------------------------------------------------------------


def test_report_loads_without_console_errors_and_shows_the_known_cells(
    chromium: str, tmp_path: Path
) -> None:
    loaded = load(chromium, _page(tmp_path, render_html(_report(hostile=False))))
    assert loaded.console == []
    dom = Dom(loaded.dom)
    assert dom.cells() == dict(report_sample.EXPECTED_STATES)
    text = " ".join(dom.text)
    assert "1 in ledger" in text  # 01-31 phase2: one completion waits in the ledger
    assert "Pub/Sub 503: service unavailable" in text  # the released trigger's error
    assert "scrape_odz" in text  # the misspelt (ignored) processor


def test_hostile_state_renders_as_text_and_runs_nothing(chromium: str, tmp_path: Path) -> None:
    """Must show: HTML and script in names, metadata and errors render as text and run nothing."""
    loaded = load(chromium, _page(tmp_path, render_html(_report(hostile=True), expand=True)))
    dom = Dom(loaded.dom)
    # Nothing ran (a script or handler would have set the marker) and nothing was
    # even attempted: an attempt would be a CSP violation on the console.
    assert not dom.marked()
    assert loaded.console == []
    assert dom.count("script") == 0
    assert dom.count("img") == 0
    assert dom.attributes_named("on") == []
    # ... and every hostile text is there for a person to read, as text.
    text = "".join(dom.text)
    for hostile in report_sample.HOSTILE:
        assert hostile in text
    states = dict(report_sample.EXPECTED_STATES)
    states["2026-01-27", "phase2"] = "claimed"  # the hostile operator re-armed it
    assert dom.cells() == states


def test_the_checks_can_fail_a_script_would_be_seen(chromium: str, tmp_path: Path) -> None:
    """The detectors work: unescaped, the payload runs without the CSP, and is refused with it."""
    body = f"<p>x</p>{report_sample.SCRIPT}"
    bare = load(chromium, _page(tmp_path, f"<!DOCTYPE html><html><body>{body}</body></html>",
                                "bare.html"))
    assert Dom(bare.dom).marked()
    policy = f'<meta http-equiv="Content-Security-Policy" content="{content_security_policy()}">'
    guarded = load(chromium, _page(
        tmp_path, f"<!DOCTYPE html><html><head>{policy}</head><body>{body}</body></html>",
        "guarded.html"))
    assert not Dom(guarded.dom).marked()
    assert any("Content Security Policy" in line for line in guarded.console)


def test_screenshot_is_a_png(chromium: str, tmp_path: Path) -> None:
    out = tmp_path / "report.png"
    screenshot(chromium, _page(tmp_path, render_html(_report(hostile=False))), out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
