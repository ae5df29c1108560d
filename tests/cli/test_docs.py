"""The documentation's code runs and its reference lists stay complete."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SRC = ROOT / "src" / "pipeline_reliability"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def _python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def test_the_tutorial_runs_top_to_bottom(capsys: pytest.CaptureFixture[str]) -> None:
    """Every python block of docs/tutorial.md runs, in order, in one namespace."""
    blocks = _python_blocks(DOCS / "tutorial.md")
    namespace: dict[str, object] = {"__name__": "tutorial"}

    for number, block in enumerate(blocks, 1):
        code = compile(block, f"docs/tutorial.md block {number}", "exec")
        exec(code, namespace)

    assert len(blocks) >= 10
    assert "refused:" in capsys.readouterr().out


def test_opentelemetry_reference_lists_every_name() -> None:
    """Every span and counter the code creates is listed in docs/reference/opentelemetry.md."""
    page = (DOCS / "reference" / "opentelemetry.md").read_text(encoding="utf-8")
    text = "\n".join(p.read_text(encoding="utf-8") for p in SRC.rglob("*.py"))
    spans = {f"pipeline_reliability.{c}.{v}"
             for c, v in re.findall(r'\bspan\(\s*"([a-z_]+)",\s*"([a-z_]+)"', text)}
    counters = {f"pipeline_reliability.{n}"
                for n in re.findall(r'\bcounter\(\s*"([a-z_.]+)"', text)}

    missing = sorted(name for name in spans | counters if f"`{name}`" not in page)

    assert spans
    assert counters
    assert missing == []


def test_failure_model_names_tests_that_exist() -> None:
    """Every test named in docs/explanation/failure-model.md exists in the tree."""
    page = (DOCS / "explanation" / "failure-model.md").read_text(encoding="utf-8")
    current: Path | None = None
    missing = []
    for path, name in re.findall(r"`([\w/]+\.py)?::(test_\w+)", page):
        if path:
            current = ROOT / "tests" / path
        assert current is not None
        if not current.is_file() or f"def {name}(" not in current.read_text(encoding="utf-8"):
            missing.append(f"{current.relative_to(ROOT)}::{name}")
    files = re.findall(r"`([\w/]+\.py)`", page)
    missing += [f for f in files if not (ROOT / "tests" / f).is_file()
                and not (ROOT / f).is_file()]

    assert missing == []
