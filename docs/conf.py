"""Sphinx configuration: Markdown (MyST) pages, furo, autodoc of the public API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sphinx.util.nodes import make_refnode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

project = "pipeline_reliability"
author = "pipeline_reliability developers"
copyright = "2026, pipeline_reliability developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Pygments failing to colour an illustrative snippet (an SQL sketch with "…")
# is cosmetic: it falls back to plain text, and must not fail the -W build.
suppress_warnings = ["misc.highlighting_failure"]

html_theme = "furo"
html_title = "pipeline_reliability"

# The API reference documents what users import; signatures stay readable
# and every cross-reference must resolve (the build runs with -W -n).
autodoc_typehints = "none"
autodoc_member_order = "bysource"
autodoc_default_options = {
    "members": True,
    # Public classes are assembled from private mixins (CompletionTracker's
    # methods live in several modules): document what they inherit, except
    # what comes from builtins and the typing machinery.
    "inherited-members": "object,str,int,Enum,Exception,BaseException,Protocol,Generic,tuple,dict",
}
autodoc_mock_imports = ["google"]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_preprocess_types = False
nitpicky = True
nitpick_ignore_regex = [
    # Standard-library and third-party types named in docstrings.
    (r"py:.*", rf"({'|'.join(sorted(sys.stdlib_module_names))})(\..*)?"),
    (r"py:.*", r"(google|opentelemetry|tenacity)\..*"),
    (r"py:class", r"(str|int|float|bool|bytes|object|list|dict|tuple|set|frozenset|None)"),
    # Type variables (R, M, ...) of generic signatures.
    (r"py:.*", r"([\w.]+\.)?[A-Z]"),
    # Napoleon reads "Some words: ..." lines of attribute docstrings as types.
    (r"py:class", r".* .*"),
    # Helpers named in docstrings that are not part of the public API.
    (r"py:func", r"(ledger_row_id|canonical_key)"),
]


def _resolve_short_names(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """
    Resolve references the Python domain cannot: names re-exported from the
    top-level package (``pipeline_reliability.MemoryStore``), and bare names
    (``StoreUnavailableError``, ``record_completion``) written in docstrings
    of private modules. The documented object whose dotted name ends with
    the reference's last part wins, preferring the referring class's members.
    """
    if node.get("refdomain") != "py":
        return None
    domain = env.get_domain("py")
    name = node["reftarget"].lstrip("~.").rsplit(".", 1)[-1]
    matches = sorted(
        full for full, entry in domain.objects.items()
        if full.rsplit(".", 1)[-1] == name and not entry.aliased
    )
    context = node.get("py:class")
    if context:
        own = [m for m in matches if m.rsplit(".", 1)[0].endswith(context)]
        matches = own or matches
    if len(matches) != 1:
        return None
    entry = domain.objects[matches[0]]
    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode,
                        matches[0])


def setup(app: Any) -> None:
    """Register the short-name resolver."""
    app.connect("missing-reference", _resolve_short_names)
