"""
Which phases the operator commands know: built-in presets of the production
pipeline, a TOML/JSON file (``--config``), or an ad hoc ``--expected`` list.

A config file looks like this (TOML; the same keys work in JSON)::

    [phases.phase3]
    expected = ["player_game_summary", "team_defense_game_summary"]
    collection = "completion_phase3"      # optional
    next_phase = "phase4"                 # optional
    deadline_minutes = 360                # optional
    trigger_lease_seconds = 300           # optional
    min_to_trigger = 4                    # optional, with critical = [...]
    counts_statuses = ["success", "partial"]
    done_empty_statuses = ["no_data"]
    timezone = "America/New_York"         # optional: the pipeline's time zone
    local_deadline = "14:00"              # optional: wall-clock deadline in that zone
    local_deadline_days_after = 1         #   ... on date + 1
    schedule = "mypkg.calendar:phase3"    # optional: date -> expected names (replaces expected)
    on_nothing_scheduled = "skip"         # or "trigger"

    [[phases.phase4.gates]]               # optional: BigQuery gates before the trigger
    table = "nba_analytics.player_game_summary"
    min_rows = 100
    distinct = "player_lookup"            # optional: count distinct values instead

    [phases.phase3.outputs]               # for `reconcile`: processor -> table
    player_game_summary = "nba_analytics.player_game_summary"

    [phases.phase3.watch]                 # for `watch`: thresholds (cli/_watch.py)
    handoff_minutes = 10
"""

from __future__ import annotations

import argparse
import importlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Any

from ..completion import LocalDeadline, PhaseSpec
from ..errors import ConfigurationError
from ._common import CliError

__all__ = ["PRESETS", "PhaseConfig", "add_phase_options", "phase_names", "read_config",
           "resolve_phase"]

PRESETS: dict[str, tuple[str, ...]] = {
    "phase2": ("p2_bigdataball_pbp", "p2_odds_game_lines", "p2_odds_player_props",
               "p2_nbacom_gamebook_pdf", "p2_nbacom_boxscores"),
    "phase3": ("player_game_summary", "team_defense_game_summary", "team_offense_game_summary",
               "upcoming_player_game_context", "upcoming_team_game_context"),
    "phase4": ("team_defense_zone_analysis", "player_shot_zone_analysis",
               "player_composite_factors", "player_daily_cache", "ml_feature_store"),
}
_NEXT = {"phase2": "phase3", "phase3": "phase4", "phase4": "phase5"}
_KEYS = frozenset({
    "expected", "collection", "next_phase", "deadline_minutes", "trigger_lease_seconds",
    "min_to_trigger", "critical", "counts_statuses", "done_empty_statuses", "outputs",
    "date_column", "timezone", "local_deadline", "local_deadline_days_after", "schedule",
    "on_nothing_scheduled", "gates", "watch",
})


@dataclass(frozen=True, slots=True)
class PhaseConfig:
    """A phase as the commands use it: the tracker's spec plus its output tables."""

    spec: PhaseSpec
    outputs: Mapping[str, str] = field(default_factory=dict)
    date_column: str = "game_date"
    #: The phase's ``[phases.NAME.watch]`` table, as written (``watch`` checks it).
    watch: Mapping[str, Any] = field(default_factory=dict)


def add_phase_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and ``--expected``."""
    parser.add_argument(
        "--config", metavar="FILE",
        help="TOML or JSON file with [phases.NAME] tables (default: the built-in presets "
        f"{', '.join(PRESETS)})",
    )
    parser.add_argument(
        "--expected", metavar="A,B,C",
        help="the phase's expected processors, comma-separated (overrides the preset)",
    )


def resolve_phase(args: argparse.Namespace, phase: str) -> PhaseConfig:
    """
    Return the configuration of ``phase``.

    Raises:
        CliError: unknown phase, unreadable or invalid config file.
    """
    table = _load(args.config) if getattr(args, "config", None) else {}
    expected = getattr(args, "expected", None)
    raw: dict[str, Any]
    if expected is not None:
        names = [p.strip() for p in expected.split(",")]
        if not all(names):
            # "" or "a,,b": a typo must not silently fall back to the preset or drop a name.
            raise CliError(f"--expected {expected!r}: give processor names separated by "
                           "commas, none empty (e.g. a,b,c)")
        raw = dict(table.get(phase, {}))
        raw["expected"] = names
    elif phase in table:
        raw = dict(table[phase])
    elif phase in PRESETS and not table:
        raw = {"expected": list(PRESETS[phase]), "next_phase": _NEXT.get(phase)}
    else:
        known = sorted(table) if table else sorted(PRESETS)
        raise CliError(f"unknown phase {phase!r}; known: {', '.join(known)}")
    try:
        return _build(phase, raw)
    except ConfigurationError as exc:
        raise CliError(f"phase {phase!r}: {exc}") from exc


def phase_names(args: argparse.Namespace) -> list[str]:
    """Every phase the commands know: the config file's, else the presets."""
    table = _load(args.config) if getattr(args, "config", None) else {}
    return sorted(table) if table else sorted(PRESETS)


def read_config(path: str) -> dict[str, Any]:
    """The whole config file (``[phases...]`` and any other table), parsed."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read --config {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text) if file.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"--config {path} is not valid {file.suffix[1:] or 'TOML'}: {exc}") from exc
    if not isinstance(data, dict):
        raise CliError(f"--config {path} needs a [phases.NAME] table per phase")
    return data


def _load(path: str) -> dict[str, dict[str, Any]]:
    data = read_config(path)
    phases = data.get("phases")
    if not isinstance(phases, dict) or not all(isinstance(v, dict) for v in phases.values()):
        raise CliError(f"--config {path} needs a [phases.NAME] table per phase")
    return phases


def _build(phase: str, raw: Mapping[str, Any]) -> PhaseConfig:
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigurationError(f"unknown key(s) {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for key in ("collection", "next_phase", "min_to_trigger"):
        if raw.get(key) is not None:
            kwargs[key] = raw[key]
    for key in ("critical", "counts_statuses", "done_empty_statuses"):
        if raw.get(key) is not None:
            kwargs[key] = _names(raw[key], key)
    if raw.get("deadline_minutes") is not None:
        minutes = _number(raw["deadline_minutes"], "deadline_minutes")
        kwargs["deadline"] = timedelta(minutes=minutes)
    if raw.get("trigger_lease_seconds") is not None:
        seconds = _number(raw["trigger_lease_seconds"], "trigger_lease_seconds")
        kwargs["trigger_lease"] = timedelta(seconds=seconds)
    kwargs.update(_calendar_options(raw))
    expected: Any = (
        _schedule(raw["schedule"]) if raw.get("schedule") is not None
        else _names(raw.get("expected"), "expected")
    )
    spec = PhaseSpec(phase, expected, **kwargs)
    outputs = raw.get("outputs") or {}
    if not isinstance(outputs, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in outputs.items()
    ):
        raise ConfigurationError("outputs must map processor names to table ids")
    date_column = raw.get("date_column", "game_date")
    if not isinstance(date_column, str):
        raise ConfigurationError("date_column must be a column name")
    watch = raw.get("watch") or {}
    if not isinstance(watch, Mapping):
        raise ConfigurationError("watch must be a table of thresholds")
    return PhaseConfig(spec, dict(outputs), date_column, dict(watch))


def _names(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{key} must be a list of names")
    return value


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigurationError(f"{key} must be a positive number")
    return float(value)


def _calendar_options(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``timezone``, ``on_nothing_scheduled``, ``local_deadline`` and ``gates``."""
    kwargs = {k: raw[k] for k in ("timezone", "on_nothing_scheduled") if raw.get(k) is not None}
    if raw.get("local_deadline") is not None:
        kwargs["local_deadline"] = _local_deadline(raw)
    if raw.get("gates") is not None:
        kwargs["gates"] = _gates(raw["gates"], raw.get("date_column", "game_date"))
    return kwargs


def _local_deadline(raw: Mapping[str, Any]) -> LocalDeadline:
    text = raw["local_deadline"]
    try:
        at = time.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is not None:
        raise ConfigurationError("local_deadline must be a wall-clock time such as \"14:00\"")
    days = raw.get("local_deadline_days_after", 0)
    return LocalDeadline(at, days_after=days)


def _schedule(path: Any) -> Any:
    """Import ``module:function`` (the operator's own calendar code)."""
    if not isinstance(path, str) or ":" not in path:
        raise ConfigurationError("schedule must be \"module:function\"")
    module, _, name = path.partition(":")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"schedule {path!r} cannot be imported: {exc}") from exc
    if not callable(found) and not callable(getattr(found, "expected_for", None)):
        raise ConfigurationError(f"schedule {path!r} is not callable")
    return found


def _gates(value: Any, date_column: Any) -> list[Any]:
    """BigQuery gates from ``[[phases.NAME.gates]]`` tables (the client is made on first use)."""
    from ..sinks.gates import BigQueryGate

    if not isinstance(value, list) or not all(isinstance(g, Mapping) for g in value):
        raise ConfigurationError("gates must be a list of tables with table/min_rows/distinct")
    gates = []
    for gate in value:
        unknown = set(gate) - {"table", "min_rows", "distinct", "date_column"}
        if unknown or not isinstance(gate.get("table"), str):
            raise ConfigurationError(f"gate {dict(gate)!r:.120}: needs table; unknown keys "
                                     f"{sorted(unknown)}")
        gates.append(BigQueryGate(
            gate["table"], min_rows=gate.get("min_rows", 1), distinct=gate.get("distinct"),
            date_column=gate.get("date_column", date_column),
        ))
    return gates
