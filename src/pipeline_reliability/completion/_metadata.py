"""
Metadata too large for the date's document (over ``INLINE_METADATA_BYTES``)
lives in a document of its own, so the date's document stays bounded whatever
the processors report (issue 10, item 2).

The metadata document is keyed by content (date, processor, digest): it never
changes once written, it is written before the barrier's transaction (so the
reference the date's document holds always resolves), and a retry or a
redelivery finds it and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..retry import RetryPolicy
from ..stores._protocol import Outcome, Put, Snapshot, StateStore
from ._doc import Completion, metadata_key
from ._spec import PhaseSpec
from ._status import metadata_refs

__all__ = ["metadata_collection", "metadata_write", "read_metadata", "write_metadata"]


def metadata_collection(spec: PhaseSpec) -> str:
    """The collection that holds the large metadata of ``spec``'s completions."""
    return f"{spec.collection}_metadata"


def write_metadata(
    store: StateStore, retry: RetryPolicy, spec: PhaseSpec, day: str, c: Completion
) -> None:
    """Write ``c``'s metadata to its own document unless it is there already."""
    collection, key, fn = metadata_write(spec, day, c)
    retry.call(store.transact, collection, key, fn)


def metadata_write(
    spec: PhaseSpec, day: str, c: Completion
) -> tuple[str, str, Callable[[Snapshot], Outcome[None]]]:
    """The ``(collection, key, fn)`` of the transaction that writes ``c``'s metadata once."""
    digest = c.metadata_digest
    assert digest is not None
    assert c.metadata_json is not None
    data = {
        "phase": spec.name,
        "date": day,
        "processor": c.processor,
        "digest": digest,
        "bytes": c.metadata_bytes,
        "metadata": c.metadata_json,
    }

    def fn(snap: Snapshot) -> Outcome[None]:
        return Outcome(None) if snap.data is not None else Outcome(None, Put(data))

    return metadata_collection(spec), metadata_key(day, c.processor, digest), fn


def read_metadata(
    store: StateStore, retry: RetryPolicy, spec: PhaseSpec, doc: dict[str, Any] | None
) -> dict[str, str]:
    """The JSON text of the metadata that ``doc``'s records keep elsewhere, by key."""
    found: dict[str, str] = {}
    for key in metadata_refs(spec, doc):
        snap = retry.call(store.get, metadata_collection(spec), key)
        text = (snap.data or {}).get("metadata")
        if isinstance(text, str):
            found[key] = text
    return found
