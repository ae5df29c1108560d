"""``python -m pipeline_reliability.cli``: the same as the ``pipeline-reliability`` command."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
