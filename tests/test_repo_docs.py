"""The front pages tell a newcomer what they need, without pointing outside the repo."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)]+)\)|`(\.\./[^`]*)`")


def _targets(text: str) -> list[str]:
    return [a or b for a, b in LINK.findall(text)]


def test_item17_contributing_points_only_inside_the_repository() -> None:
    """CONTRIBUTING.md's links and paths resolve inside the clone (no ../shared/...)."""
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    outside = [t for t in _targets(text) if not t.startswith(("http://", "https://", "#"))
               and not (ROOT / t.split("#")[0]).resolve().is_relative_to(ROOT)]
    assert "../" not in text
    assert outside == []
    # The emulator facts the harness relies on are stated here, not elsewhere.
    for fact in ("2 s", "process group", "AnonymousCredentials", "duckdb==1.5.5"):
        assert fact in text


def test_item17_readme_says_how_to_install_from_source_and_what_tests_need() -> None:
    """README: install before publication (clone / git URL) and the test suite's needs."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "git+" in text
    assert "git clone" in text
    for need in ("Java", "cloud-firestore-emulator", "pubsub-emulator", "disk"):
        assert need in text
    # The two commands stay the first thing a reader sees.
    first_block = text.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert first_block == [
        "python3 -m pip install -q 'nox>=2024.10' && python3 -m nox -s simulate",
        "python3 -m pip install -q 'nox>=2024.10' && python3 -m nox -s tests",
    ]
