"""
Gates: checks that must pass before a phase's trigger is claimed.

A gate runs outside every transaction (it does I/O, e.g. a BigQuery count);
its verdict is then handed to the pure decision (``_claims.try_claim``), so a
failing gate never claims and releases in a loop: it leaves the date
``gated`` with the reason, and the next delivery or sweep asks again. A gate
that raises counts as closed (fail closed) and is logged with its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .._telemetry import counter, log_failure

__all__ = ["Gate", "GateResult", "GateVerdict", "evaluate_gates", "gate_name", "note_gate"]

logger = logging.getLogger("pipeline_reliability.completion")
MAX_REASON_CHARS = 1000


@dataclass(frozen=True, slots=True)
class GateResult:
    """
    What a gate says about one date: ``passed``, and why not (shown in ``status``).

    A gate may also return a plain ``bool``.

    .. versionadded:: 0.2.0
    """

    passed: bool
    reason: str = ""


#: A gate: called with the date (``YYYY-MM-DD``); returns ``bool`` or a :class:`GateResult`.
Gate = Callable[[str], "bool | GateResult"]


@dataclass(frozen=True, slots=True)
class GateVerdict:
    """The combined verdict of a phase's gates for one date (internal)."""

    open: bool
    reason: str | None = None


OPEN = GateVerdict(True)


def gate_name(gate: object) -> str:
    """A short name of ``gate`` for reasons and logs."""
    name = getattr(gate, "name", None) or getattr(gate, "__name__", None)
    return str(name) if isinstance(name, str) and name else type(gate).__name__


def _clip(text: str) -> str:
    # Replaced, not refused: the reason is only for people (and bounded in the document).
    return text[:MAX_REASON_CHARS].encode("utf-8", "replace").decode("utf-8")


def evaluate_gates(gates: tuple[Gate, ...], phase: str, day: str) -> GateVerdict:
    """Ask every gate in order; the first that does not pass closes the verdict."""
    for gate in gates:
        name = gate_name(gate)
        try:
            answer: object = gate(day)
        except Exception as exc:  # noqa: BLE001 - fail closed, logged, reported in the status
            log_failure(logger, "gate failed; it counts as closed", exc, phase=phase, date=day,
                        gate=name)
            counter("tracker.gate_errors", "Gates that raised (counted as closed)").add(
                1, {"phase": phase}
            )
            return GateVerdict(False, _clip(f"{name}: error: {type(exc).__name__}: {exc}"))
        if isinstance(answer, GateResult):
            passed, why = answer.passed is True, answer.reason
        elif isinstance(answer, bool):
            passed, why = answer, ""
        else:
            passed, why = False, f"returned {type(answer).__name__}, not bool or GateResult"
        if not passed:
            counter("tracker.gated", "Trigger claims held back by a closed gate").add(
                1, {"phase": phase}
            )
            return GateVerdict(False, _clip(f"{name}: {why}" if why else f"{name}: closed"))
    return OPEN


def note_gate(doc: dict[str, Any], verdict: GateVerdict, now: datetime) -> bool:
    """
    Remember ``verdict`` in ``doc``; return whether that changed the document.

    Written only when the state or the reason changes (``since`` is when it
    first read so), so a date that stays gated costs no write per check.
    """
    state = "open" if verdict.open else "closed"
    gate = doc.get("gate")
    same = isinstance(gate, dict) and (gate.get("state"), gate.get("reason")) == (
        state,
        verdict.reason,
    )
    if same:
        return False
    doc["gate"] = {"state": state, "reason": verdict.reason, "since": now}
    return True
