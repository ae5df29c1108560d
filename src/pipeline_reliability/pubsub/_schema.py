"""
The version of the completion-message schema: defined here, once.

``CompletionMessage.to_dict()`` writes the version into every body it makes;
``parse_completion_message`` reads it. A body without the field is version 1
(the production publishers never sent one). A body from a newer publisher
than this library knows is refused as a poison message rather than half
understood: upgrade the orchestrator before its processors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidMessageError

__all__ = ["SCHEMA_FIELD", "SCHEMA_VERSION", "schema_version"]

SCHEMA_VERSION = 1
"""The completion-message schema version this library writes and reads."""

SCHEMA_FIELD = "schema_version"
"""The body field that carries the version."""


def schema_version(body: Mapping[str, Any], label: str = "") -> int:
    """
    Return the schema version of a decoded completion body.

    Raises:
        InvalidMessageError: the field is not a positive integer, or names a
            version newer than :data:`SCHEMA_VERSION`.
    """
    value = body.get(SCHEMA_FIELD)
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidMessageError(
            f"field {SCHEMA_FIELD!r} must be a positive integer, got {value!r:.60}{label}"
        )
    if value > SCHEMA_VERSION:
        raise InvalidMessageError(
            f"completion schema version {value} is newer than this library reads "
            f"({SCHEMA_VERSION}){label}: upgrade pipeline-reliability where it is parsed"
        )
    return value
