"""Processor names: publisher class names normalised to the snake_case config names."""

from __future__ import annotations

import re

from ..errors import InvalidInputError

__all__ = ["normalise_processor_name"]

# A word boundary inside CamelCase: lower/digit followed by upper ("GameSummary"),
# or the last capital of an acronym followed by a word ("MLFeature" -> "ML_Feature").
_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_UNDERSCORES = re.compile(r"_+")
_PREFIX = "Async"
_SUFFIX = "Processor"


def normalise_processor_name(name: str) -> str:
    """
    Return a processor's config name: ``PlayerGameSummaryProcessor`` -> ``player_game_summary``.

    The publishers of the production pipeline send the processor's class name;
    the orchestration config names processors in snake_case. A name with an
    upper-case letter is treated as a class name: a leading ``Async`` and a
    trailing ``Processor`` are dropped, then CamelCase becomes snake_case with
    acronyms kept together (``MLFeatureStoreProcessor`` -> ``ml_feature_store``,
    ``AsyncUpcomingPlayerGameContextProcessor`` ->
    ``upcoming_player_game_context``). A name without upper-case letters is
    already a config name and is returned unchanged (apart from surrounding
    whitespace).

    Args:
        name: A class name or a snake_case name.

    Returns:
        The snake_case name.

    Raises:
        InvalidInputError: ``name`` is not a string or is blank.

    .. versionadded:: 0.1.0
    """
    if not isinstance(name, str):
        raise InvalidInputError(f"processor name must be a string, got {type(name).__name__}")
    text = name.strip()
    if not text:
        raise InvalidInputError("processor name is blank")
    if not any(c.isupper() for c in text):
        return text
    if text.startswith(_PREFIX) and text[len(_PREFIX) : len(_PREFIX) + 1].isupper():
        text = text[len(_PREFIX) :]
    if text.endswith(_SUFFIX) and len(text) > len(_SUFFIX):
        text = text[: -len(_SUFFIX)]
    snake = _UNDERSCORES.sub("_", _BOUNDARY.sub("_", text)).strip("_").lower()
    # Only underscores around the words (e.g. "_Processor"): keep the lowered text.
    return snake or text.lower()
