"""A fake rate-limited API shared by the rate limiter tests (no test module imports another)."""

from __future__ import annotations

from collections import deque

from pipeline_reliability.testing import FakeClock


class ThrottledError(Exception):
    """What a scraper's HTTP client raises on a 429."""

    status_code = 429


class BrokenError(Exception):
    """A failure that is not a throttle."""


class FakeApi:
    """An API that answers 429 to any call beyond ``capacity`` in the last second."""

    def __init__(self, clock: FakeClock, capacity: int) -> None:
        self.clock = clock
        self.capacity = capacity
        self.accepted: deque[float] = deque()
        self.log: list[tuple[float, bool]] = []

    def __call__(self) -> str:
        now = self.clock.monotonic()
        while self.accepted and self.accepted[0] <= now - 1.0:
            self.accepted.popleft()
        if len(self.accepted) >= self.capacity:
            self.log.append((now, False))
            raise ThrottledError
        self.accepted.append(now)
        self.log.append((now, True))
        self.clock.advance(0.001)  # each call takes a millisecond
        return "ok"

    async def acall(self) -> str:
        """The same API for coroutines."""
        return self()
