"""
The ``report`` command's page: one self-contained HTML file (no server, no
external asset, no script) with a dates by phases grid coloured by state; each
cell opens (``<details>``) to its processors, their times and the trigger's
history.

Everything that comes from the store (processor names, metadata, error and
reason texts) is escaped, and the page carries a Content-Security-Policy that
allows nothing but its own style sheet (by hash): even a string that slipped
through could not run a script, load an image or submit a form.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from html import escape
from typing import Any

from ..ops._day import CELL_STATES, PhaseDay, ProcessorDay, TriggerStep
from ..ops._report import DayReport

__all__ = ["CSS", "content_security_policy", "render_html"]

MAX_METADATA_CHARS = 4000  # per processor: the page stays readable (and small) for a season

# State colours: green settled, blue in motion, amber waiting, red needs a person.
CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d1d1f;background:#fff}
h1{font-size:1.4em;margin:0 0 .2em}
p.meta{color:#555;margin:0 0 1em}
table{border-collapse:collapse}
table.grid>thead th{position:sticky;top:0;background:#f4f4f6;padding:.4em .6em;text-align:left}
table.grid>tbody>tr>th{padding:.3em .6em;text-align:left;white-space:nowrap;vertical-align:top}
td.cell{border:1px solid #fff;padding:.25em .5em;vertical-align:top;min-width:11em}
td.cell summary{cursor:pointer;font-weight:600}
td.cell table{margin:.4em 0;font-size:.9em;background:#ffffffcc}
td.cell table td,td.cell table th{padding:.1em .4em;text-align:left;border-bottom:1px solid #0001}
td.cell table td{white-space:nowrap}
td.cell table td.wrap{white-space:normal;overflow-wrap:anywhere;min-width:8em;max-width:16em}
td.cell pre{white-space:pre-wrap;word-break:break-all;margin:0;font-size:.85em;max-width:28em}
ul.history{margin:.3em 0;padding-left:1.2em;font-size:.9em}
.badge{display:inline-block;border-radius:.6em;padding:0 .45em;font-size:.8em;
  background:#b3261e;color:#fff;margin-left:.3em}
ul.legend{list-style:none;padding:0;margin:0 0 1em;display:flex;flex-wrap:wrap;gap:.4em}
ul.legend li{padding:.2em .6em;border-radius:.3em}
.s-triggered{background:#cdebd3}.s-skipped{background:#e4e9e4}
.s-claimed{background:#cfe3f7}.s-complete{background:#dbeefa}
.s-partial{background:#fff1c2}.s-no_data{background:#f1f1f1}
.s-gated{background:#ffe0b2}.s-released{background:#ffd0a8}
.s-overdue{background:#f7b9b4}.s-degraded{background:#e9c7f0}.s-error{background:#e57373}
.p-missing,.p-not_done,.p-ignored,.p-in_ledger{color:#8a1c13;font-weight:600}
"""


def _hash(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def content_security_policy() -> str:
    """The page's policy: nothing may load or run but its own style sheet."""
    return (f"default-src 'none'; style-src 'sha256-{_hash(CSS)}'; "
            "base-uri 'none'; form-action 'none'")


def render_html(report: DayReport, *, expand: bool = False) -> str:
    """The report as one HTML document (text, UTF-8); ``expand`` opens every cell."""
    generated = _time(report.generated_at) if report.generated_at else "?"
    span = f"{report.dates[0]} to {report.dates[-1]}" if report.dates else "no dates"
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(content_security_policy())}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(report.title)}: {_e(span)}</title>",
        f"<style>{CSS}</style>",
        "</head><body>",
        f"<h1>{_e(report.title)}</h1>",
        f'<p class="meta">{_e(span)}: {len(report.dates)} date(s) &times; {len(report.phases)} '
        f"phase(s); read at {_e(generated)}. Open a cell for its processors and trigger.</p>",
        _legend(report),
        _grid(report, expand),
        "</body></html>",
        "",
    ])


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _time(at: datetime | None) -> str:
    return at.isoformat(timespec="seconds") if at is not None else "-"


def _legend(report: DayReport) -> str:
    counts = report.counts()
    items = "".join(
        f'<li class="s-{state}" title="{_e(text)}">{_e(state)}: {counts[state]}</li>'
        for state, text in CELL_STATES.items()
    )
    return f'<ul class="legend">{items}</ul>'


def _grid(report: DayReport, expand: bool) -> str:
    head = "".join(f'<th scope="col">{_e(p)}</th>' for p in report.phases)
    rows = []
    for day in report.days:
        by_phase = {p.phase: p for p in day.phases}
        cells = "".join(_cell(by_phase.get(p), expand) for p in report.phases)
        rows.append(f'<tr><th scope="row">{_e(day.date)}</th>{cells}</tr>')
    return (f'<table class="grid"><thead><tr><th scope="col">date</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _cell(cell: PhaseDay | None, expand: bool) -> str:
    if cell is None:
        return '<td class="cell"></td>'
    state = cell.state if cell.state in CELL_STATES else "error"
    badge = (f'<span class="badge">{cell.in_ledger} in ledger</span>'
             if cell.in_ledger else "")
    count = f" {cell.count}/{cell.expected}" if cell.expected else ""
    body = [
        f"<p>trigger: {_e(cell.trigger_state)}"
        + (f" ({_e(cell.trigger_reason)}, attempt {cell.trigger_attempt})"
           if cell.trigger_reason else "")
        + (f"; deadline {_e(_time(cell.deadline_at))}" if cell.deadline_at else "")
        + "</p>",
    ]
    if cell.error:
        body.append(f'<p class="error">{_e(cell.error)}</p>')
    if cell.processors:
        body.append(_processors(cell.processors))
    if cell.history:
        body.append(_history(cell.history))
    return (
        f'<td class="cell s-{state}" data-date="{_e(cell.date)}" data-phase="{_e(cell.phase)}" '
        f'data-state="{state}"><details{" open" if expand else ""}>'
        f"<summary>{_e(state)}{count}{badge}</summary>"
        f"{''.join(body)}</details></td>"
    )


def _processors(processors: Iterable[ProcessorDay]) -> str:
    rows = []
    for p in processors:
        meta = _metadata(p.metadata)
        rows.append(
            f'<tr class="p-{_e(p.state)}"><td>{_e(p.name)}</td><td>{_e(p.state)}</td>'
            f"<td>{_e(p.status or '-')}</td><td class='wrap'>{_e(p.execution_id or '-')}</td>"
            f"<td>{_e(_time(p.completed_at))}</td><td>{_e(_time(p.reported_at))}</td>"
            f"<td>{_e('-' if p.record_count is None else p.record_count)}</td>"
            f'<td class="wrap">{meta}</td></tr>'
        )
    return ("<table><thead><tr><th>processor</th><th>state</th><th>status</th><th>run</th>"
            "<th>completed</th><th>reported</th><th>rows</th><th>metadata</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _metadata(metadata: Any) -> str:
    if not metadata:
        return ""
    text = json.dumps(metadata, sort_keys=True, default=str, ensure_ascii=False)
    if len(text) > MAX_METADATA_CHARS:
        text = text[:MAX_METADATA_CHARS] + " …(cut)"
    return f"<pre>{_e(text)}</pre>"


def _history(steps: Iterable[TriggerStep]) -> str:
    items = "".join(
        f"<li>{_e(_time(s.at))} {_e(s.what)}" + (f": {_e(s.detail)}" if s.detail else "")
        + "</li>"
        for s in steps
    )
    return f'<ul class="history">{items}</ul>'
