"""Sphinx configuration: Markdown (MyST) pages, furo, autodoc of the public API."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

project = "pipeline_reliability"
author = "pipeline_reliability developers"
copyright = "2026, pipeline_reliability developers"  # noqa: A001 - Sphinx's name

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

html_theme = "furo"
html_title = "pipeline_reliability"

# The API reference documents what users import; signatures stay readable
# and every cross-reference must resolve (the build runs with -W -n).
autodoc_typehints = "none"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_mock_imports = ["google"]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_preprocess_types = False
nitpicky = True
# Names in docstrings that are not part of these docs (standard library and
# Google client types); autodoc would otherwise try to link them.
nitpick_ignore_regex = [
    (r"py:.*", r"(datetime|collections|typing|concurrent|threading|enum|logging)\..*"),
    (r"py:.*", r"google\..*"),
    (r"py:.*", r"opentelemetry\..*"),
    (r"py:class", r"(str|int|float|bool|bytes|object|list|dict|tuple|set|frozenset|None)"),
]
