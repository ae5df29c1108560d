"""Small builders shared by the retry tests (real api-core error objects, no mocks)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import requests
from google.api_core import exceptions as _exceptions

from pipeline_reliability.testing import FakeClock

# google-api-core ships no type information; one Any here keeps the tests mypy --strict clean.
gexc: Any = _exceptions


def http_error(status: int, body: dict[str, Any]) -> Exception:
    """Parse a REST error response the way google-cloud-* clients do."""
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.request = requests.Request("POST", "https://bigquery.googleapis.com/x").prepare()
    error: Exception = gexc.from_http_response(response)
    return error


def bigquery_error(status: int, reason: str, message: str = "boom") -> Exception:
    """A BigQuery REST error with one structured ``errors`` entry."""
    return http_error(
        status,
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"reason": reason, "message": message, "domain": "global"}],
            }
        },
    )


class Flaky:
    """A callable that raises the given errors in turn, then returns ``"ok"``."""

    def __init__(
        self,
        *errors: BaseException,
        clock: FakeClock | None = None,
        takes: float = 0.0,
    ) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.clock = clock
        self.takes = takes
        self.started_at: list[float] = []

    def __call__(self) -> str:
        self.calls += 1
        if self.clock is not None:
            self.started_at.append(self.clock.monotonic())
            self.clock.advance(self.takes)
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def always(error: Callable[[], BaseException], times: int = 1000) -> list[BaseException]:
    """``times`` fresh instances of an error."""
    return [error() for _ in range(times)]
