"""
Pub/Sub administration for tools: is a topic there (with a short deadline),
and create one (``simulate --emulators``).

Like the publisher, the one place besides it that talks to Pub/Sub;
``google.cloud.pubsub_v1`` is imported inside the functions only.
"""

from __future__ import annotations

import logging
from typing import Any

from .._validate import duration_seconds
from ..errors import (
    ConfigurationError,
    EmulatorError,
    MissingDependencyError,
    PublishFailedError,
    ReliabilityError,
)
from ..stores._probe import DEFAULT_PROBE_TIMEOUT, call_within
from ._publisher import _topic_path

__all__ = ["create_topic", "probe_topic"]

logger = logging.getLogger("pipeline_reliability.pubsub")


def _client() -> Any:
    try:
        from google.cloud.pubsub_v1 import PublisherClient
    except ImportError as exc:  # pragma: no cover - only without the extra
        raise MissingDependencyError("google-cloud-pubsub", "pubsub") from exc
    return PublisherClient()


def probe_topic(
    topic: str,
    *,
    project: str | None = None,
    timeout: float = DEFAULT_PROBE_TIMEOUT,
    must_exist: bool = True,
) -> str:
    """
    Check that Pub/Sub answers within ``timeout`` seconds and that ``topic``
    exists (with ``must_exist=False``, only that Pub/Sub answers).

    A ``PermissionDenied`` counts as reachable: a publisher may hold
    ``pubsub.topics.publish`` without ``pubsub.topics.get``.

    Returns:
        The full topic path, ``projects/P/topics/T``.

    Raises:
        ConfigurationError: ``topic`` is invalid, or it does not exist.
        PublishFailedError: no answer within ``timeout``, or another error
            (the cause is chained).
    """
    path = _topic_path(topic, project)
    seconds = duration_seconds(timeout, "timeout")

    def get() -> None:
        from google.api_core import exceptions as gexc

        client = _client()
        try:
            # retry=None: one attempt, so the deadline is the whole wait.
            client.get_topic(topic=path, timeout=seconds, retry=None)
        except gexc.NotFound as exc:
            if must_exist:
                raise ConfigurationError(f"Pub/Sub topic {path} does not exist") from exc
        except gexc.PermissionDenied as exc:
            logger.debug("cannot read topic %s (%s); assuming it exists", path, exc)
        except Exception as exc:
            raise PublishFailedError(f"Pub/Sub: {type(exc).__name__}: {exc}") from exc
        finally:
            client.stop()

    def on_timeout() -> ReliabilityError:
        return PublishFailedError("the call hangs (a black-holed address?)")

    try:
        call_within(get, seconds, on_timeout)
    except PublishFailedError as exc:
        raise PublishFailedError(
            f"no answer from Pub/Sub about {path} within {seconds:g} s: {exc}"
        ) from exc
    return path


def create_topic(project: str, name: str) -> tuple[str, Any]:
    """
    Create the topic ``projects/<project>/topics/<name>`` (on an emulator, for tools).

    Returns:
        The topic path and a callable that releases the client.

    Raises:
        EmulatorError: the topic could not be created.
    """
    client = _client()
    path: str = client.topic_path(project, name)
    try:
        client.create_topic(name=path, timeout=30.0)
    except Exception as exc:
        raise EmulatorError(f"creating the Pub/Sub topic {path} failed: {exc}") from exc
    return path, client.stop
