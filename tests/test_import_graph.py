"""The package keeps its floors: no two of its modules import each other (issue 10, item 20)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _module(path: Path, src: Path) -> str:
    return ".".join(path.relative_to(src).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path, src: Path) -> set[str]:
    """Every module ``path`` imports relatively, at module level or inside functions."""
    own = _module(path, src)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            parts = package.split(".")
            target = ".".join(parts[: len(parts) - (node.level - 1)]
                              + ([node.module] if node.module else []))
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def circles(package: Path, src: Path) -> list[tuple[str, str]]:
    """Pairs of modules (packages' ``__init__`` aside) that import each other."""
    modules = {_module(p, src): p for p in package.rglob("*.py")}
    graph = {name: _imports(path, src) & modules.keys() for name, path in modules.items()}
    return sorted(
        (a, b) for a, deps in graph.items() for b in deps
        if a < b and a in graph.get(b, set())
        and modules[a].name != "__init__.py" and modules[b].name != "__init__.py"
    )


def test_item20_no_two_modules_import_each_other() -> None:
    """Neither at module level, nor inside functions, nor under TYPE_CHECKING."""
    assert circles(SRC / "pipeline_reliability", SRC) == []


def test_the_check_sees_a_circle(tmp_path: Path) -> None:
    """The detector itself: a function-level import back is a circle too."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "a.py").write_text("from . import b\n", encoding="utf-8")
    (package / "b.py").write_text("def f():\n    from .a import x\n", encoding="utf-8")
    (package / "c.py").write_text("from .a import y\n", encoding="utf-8")

    assert circles(package, tmp_path) == [("pkg.a", "pkg.b")]
