"""
The Pub/Sub edge: parse incoming completion messages, publish trigger events.

The only place that talks to Pub/Sub (DESIGN §2). ``google.cloud.pubsub_v1``
is imported on first publish, never at import.
"""

from __future__ import annotations

from ._message import STATUSES, CompletionMessage, parse_completion_message
from ._names import normalise_processor_name
from ._publisher import DEFAULT_PUBLISH_RETRY, PublishableEvent, PubSubTriggerPublisher

__all__ = [
    "CompletionMessage",
    "DEFAULT_PUBLISH_RETRY",
    "PubSubTriggerPublisher",
    "PublishableEvent",
    "STATUSES",
    "normalise_processor_name",
    "parse_completion_message",
]
