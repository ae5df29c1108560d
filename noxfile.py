"""Build, test, lint, type-check, document and benchmark: ``python3 -m nox -s <session>``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox
import nox.command

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint", "typecheck"]

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml("pyproject.toml")
BQEMU_VENV = ROOT / ".nox" / "_bqemulator"
# The BigQuery emulator lives in its own venv (its pytest plugin and pins must
# not leak into ours). duckdb is pinned to the one version for which PyPI ships
# the spatial extension, so the emulator starts without downloading anything.
BQEMU_PACKAGES = ["bqemulator>=1.4", "numpy", "duckdb==1.5.5", "duckdb-extension-spatial==1.5.5"]
_SPATIAL = """
import glob, os, duckdb, duckdb_extension_spatial
ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_spatial.__file__),
                             "extensions", "v" + duckdb.__version__, "spatial.duckdb_extension"))
assert ext, f"no spatial extension for duckdb {duckdb.__version__}"
duckdb.connect().execute(f"INSTALL '{ext[0]}'")
"""


def _bqemulator(session: nox.Session) -> str:
    """Prepare the emulator venv once and return its ``bqemulator`` executable."""
    binary = BQEMU_VENV / "bin" / "bqemulator"
    marker = BQEMU_VENV / ".ready"
    if not marker.exists():
        shutil.rmtree(BQEMU_VENV, ignore_errors=True)
        session.run("python3", "-m", "venv", str(BQEMU_VENV), external=True)
        pip = str(BQEMU_VENV / "bin" / "pip")
        session.run(pip, "install", "-q", *BQEMU_PACKAGES, external=True)
        session.run(str(BQEMU_VENV / "bin" / "python"), "-c", _SPATIAL, external=True)
        marker.write_text("ok\n")
    return str(binary)


def _chromium(session: nox.Session) -> None:
    """
    Install Debian's Chromium for the HTML report tests when it is missing and
    this machine can (root with apt-get); otherwise the tests say what is
    missing (a failure in CI, a loud skip elsewhere).
    """
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        session.warn("Chromium is missing: the HTML report tests need it "
                     "(apt-get install chromium)")
        return
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    install = ("apt-get", "install", "-y", "-q", "chromium")
    try:
        session.run(*install, external=True, env=env)
    except nox.command.CommandFailed:
        # A fresh machine has no package lists yet: fetch them, then try again.
        session.run("apt-get", "update", "-q", external=True, env=env)
        session.run(*install, external=True, env=env)


def _install(session: nox.Session, *groups: str, extras: str = "gcp") -> None:
    deps = [d for g in groups for d in nox.project.dependency_groups(PYPROJECT, g)]
    session.install("-q", "-e", f".[{extras}]", *deps)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, emulators included (they are started by the tests)."""
    _install(session, "tests")
    _chromium(session)
    env = {"BQEMULATOR_BIN": _bqemulator(session)}
    session.run("pytest", *(session.posargs or ["-q"]), env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    session.install("-q", *nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package and the tests."""
    _install(session, "tests", "typing", "bench")
    session.run("mypy", "src", "benchmarks")
    # Each test folder has its own conftest.py; mypy needs them checked one folder at a time.
    folders = sorted(p for p in (ROOT / "tests").iterdir() if p.is_dir() and p.name[0] != "_")
    loose = sorted(str(p) for p in (ROOT / "tests").glob("*.py"))
    session.run("mypy", *loose)
    for folder in folders:
        session.run("mypy", str(folder))


@nox.session
def docs(session: nox.Session) -> None:
    """Build the docs with warnings as errors."""
    _install(session, "docs")
    session.run("sphinx-build", "-W", "-n", "-b", "html", "docs", "docs/_build/html")


@nox.session
def simulate(session: nox.Session) -> None:
    """The main job: a chaos game day on the embedded store."""
    session.install("-q", "-e", ".")
    session.run("pipeline-reliability", "simulate", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark script, each printing ratios against its in-run baseline."""
    _install(session, "bench")
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        session.run("python", str(script), *session.posargs, env={"PYTHONHASHSEED": "0"})



@nox.session
def screenshots(session: nox.Session) -> None:
    """
    PNG screenshots of the HTML report for a sample state, for a person to look
    at: ``build/screenshots/report.png`` (the grid) and ``report-open.png``
    (every cell open, with hostile texts shown as text).
    """
    session.install("-q", "-e", ".")
    _chromium(session)
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        session.error("Chromium is missing: apt-get install chromium")
    out = ROOT / "build" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    sample = str(ROOT / "tests" / "cli" / "report_sample.py")
    shots = {"report": ([], "1400,700"), "report-open": (["--hostile", "--expand"], "1800,2400")}
    for name, (flags, size) in shots.items():
        page = out / f"{name}.html"
        session.run("python", sample, str(page), *flags)
        session.run(
            binary, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
            f"--user-data-dir={out / '.profile'}", f"--window-size={size}",
            f"--screenshot={out / (name + '.png')}", page.as_uri(), external=True,
            silent=True,  # Chromium's D-Bus chatter; shown if it fails
        )
    shutil.rmtree(out / ".profile", ignore_errors=True)
    session.log(f"screenshots in {out}")
