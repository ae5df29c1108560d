"""
``simulate`` explains itself (issue 10, item 16) and the CLI's code keeps its
layering (item 20): no import circle, Google clients only behind the
boundary packages.
"""

from __future__ import annotations

import ast
import io
import re
from pathlib import Path

from cli_helpers import Cli

from pipeline_reliability.cli._simulate import ProgressBar
from pipeline_reliability.cli.simulate import (
    Simulation,
    SimulationConfig,
    check_run,
    memory_components,
    render_text,
    run_simulation,
)
from pipeline_reliability.cli.simulate._config import PHASE3, PHASE4
from pipeline_reliability.cli.simulate._plan import Planner

CLI = Path(__file__).resolve().parents[2] / "src" / "pipeline_reliability" / "cli"


# -- item 16 ----------------------------------------------------------------------------------


def test_item16_list_invariants_names_and_explains_each(cli: Cli) -> None:
    """--list-invariants prints every invariant with what it means, and runs nothing."""
    from pipeline_reliability.cli.simulate._invariants import INVARIANTS

    run = cli("simulate", "--list-invariants")

    assert run.status == 0
    lines = run.out.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(INVARIANTS)
    assert all(len(line.split()) > 3 for line in lines)


def test_item16_every_check_of_a_run_is_a_listed_invariant() -> None:
    """The checks a run makes are exactly the listed invariants (none undocumented)."""
    from pipeline_reliability.cli.simulate._invariants import INVARIANTS

    names: set[str] = set()
    for chaos in ("none", "high"):  # breaker_healthy_no_writes needs a run without outage
        config = SimulationConfig(dates=2, chaos=chaos, seed=4)
        sim = Simulation(config, memory_components(config))
        sim.run()
        names |= {check.name for check in check_run(sim).checks}

    # status_readable is only checked when a status cannot be read.
    assert names == set(INVARIANTS) - {"status_readable"}


def test_item16_legend_explains_degr_repl_and_points_to_the_invariants() -> None:
    """The report's legend says what degr and repl count and why repl can be lower."""
    text = render_text(run_simulation(SimulationConfig(dates=1, chaos="none")))

    assert "fallback ledger while Firestore was down" in text
    assert "repl is lower when" in text
    assert "--list-invariants" in text


def test_item16_progress_total_is_known_from_the_start() -> None:
    """Phase 4's deliveries are in the total from the first tick; it never goes backwards."""
    config = SimulationConfig(dates=3, chaos="medium", seed=1)
    calls: list[tuple[int, int, int]] = []
    planner = Planner(config)
    planned = sum(len(planner.deliveries(p, d, 0)) for p in (PHASE3, PHASE4)
                  for d in planner.dates)

    run_simulation(config, progress=lambda *a: calls.append(a))

    knowns = [known for _, _, known in calls]
    assert knowns[0] >= planned
    assert knowns == sorted(knowns)
    assert all(done <= known for _, done, known in calls)


def test_item16_progress_bar_never_moves_back() -> None:
    """A total that grows (redeliveries) does not shrink the drawn bar."""
    stream = io.StringIO()
    bar = ProgressBar(stream, width=10)

    bar(0, 5, 10)
    bar(1, 6, 20)

    first, second = re.findall(r"\[([#-]+)\]", stream.getvalue())
    assert first.count("#") == 5
    assert second.count("#") == 5


# -- item 20 ----------------------------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    """Every module that ``path`` imports, at any depth (relative ones resolved)."""
    package = path.parent.relative_to(CLI.parents[1]).as_posix().replace("/", ".")
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)
    return out


def test_item20_cli_imports_no_google_client() -> None:
    """The CLI and simulate reach Google only through stores/, sinks/, pubsub/."""
    offenders = {
        path.relative_to(CLI).as_posix(): sorted(m for m in _imports(path)
                                                 if m.startswith("google"))
        for path in CLI.rglob("*.py")
    }

    assert {k: v for k, v in offenders.items() if v} == {}


def test_item20_simulate_modules_import_no_circle() -> None:
    """No module of cli/simulate imports one that imports it back (at any depth)."""
    modules = {p.stem: p for p in (CLI / "simulate").glob("_*.py")}
    prefix = "pipeline_reliability.cli.simulate."
    graph = {
        name: {m[len(prefix):].split(".")[0] for m in _imports(path) if m.startswith(prefix)}
        & set(modules)
        for name, path in modules.items()
    }

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), list(graph[start])
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(graph.get(node, ()))
        return False

    assert graph["_components"]
    assert [name for name in graph if reaches(name, name)] == []
