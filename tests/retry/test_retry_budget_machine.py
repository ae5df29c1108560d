"""
``RetryBudget`` against a model (issue 12 item 3): a plain list of every call
and retry with its time, summed from scratch on each question, must agree
with the budget's ring of counters on every grant, refusal and count.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from pipeline_reliability.retry import RetryBudget

SLOTS = 10  # the documented granularity: a window slides in tenths


class BudgetModel:
    """What the docs promise, written the slow and obvious way."""

    def __init__(self, ratio: float, window: float, min_per_second: float) -> None:
        # The decimal a float prints as, independently of the implementation's Fraction(repr()).
        self.ratio = Fraction(Decimal(str(ratio)))
        self.floor = Fraction(Decimal(str(min_per_second))) * Fraction(Decimal(str(window)))
        self.width = window / SLOTS
        self.events: list[tuple[float, str]] = []

    def _in_window(self, at: float, now: float) -> bool:
        newest = now // self.width
        return newest - SLOTS < at // self.width <= newest

    def usage(self, now: float) -> tuple[int, int]:
        live = [kind for at, kind in self.events if self._in_window(at, now)]
        return live.count("call"), live.count("retry")

    def record_call(self, now: float) -> None:
        self.events.append((now, "call"))

    def try_retry(self, now: float) -> bool:
        calls, retries = self.usage(now)
        if retries + 1 > max(self.ratio * calls, self.floor):
            return False
        self.events.append((now, "retry"))
        return True


class BudgetMachine(RuleBasedStateMachine):
    """Random calls, retries and clock moves; the budget and the model must agree."""

    budget: RetryBudget
    model: BudgetModel

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0

    @initialize(
        ratio=st.sampled_from([0.0, 0.1, 0.2, 0.25, 0.5, 0.7, 1.0, 2.5]),
        window=st.sampled_from([1.0, 3.0, 10.0, 60.0]),
        min_per_second=st.sampled_from([0.0, 0.1, 0.3, 1.0]),
    )
    def build(self, ratio: float, window: float, min_per_second: float) -> None:
        self.budget = RetryBudget(ratio, window=window, min_per_second=min_per_second)
        self.model = BudgetModel(ratio, window, min_per_second)

    @rule(
        dt=st.one_of(
            st.sampled_from([0.0, 1e-6, 0.1, 0.3, 0.999999, 1.0, 2.9999, 9.999999, 10.0, 61.0]),
            st.floats(min_value=0.0, max_value=30.0),
        )
    )
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(n=st.integers(min_value=1, max_value=7))
    def calls(self, n: int) -> None:
        for _ in range(n):
            self.budget.record_call(self.now)
            self.model.record_call(self.now)

    @rule(n=st.integers(min_value=1, max_value=5))
    def retries(self, n: int) -> None:
        for _ in range(n):
            assert self.budget.try_retry(self.now) == self.model.try_retry(self.now)

    @invariant()
    def same_counts(self) -> None:
        if hasattr(self, "budget"):
            assert self.budget.usage(self.now) == self.model.usage(self.now)

    @invariant()
    def never_more_retries_than_allowed_when_granted(self) -> None:
        # Right after any grant at `now` the window holds at most the allowance; between
        # grants, calls may expire before the retries they paid for (that is allowed).
        if hasattr(self, "budget"):
            calls, retries = self.budget.usage(self.now)
            last = [kind for at, kind in self.model.events if at == self.now]
            if last and last[-1] == "retry":
                assert retries <= self.budget.allowed(calls)


TestBudgetMachine = BudgetMachine.TestCase
TestBudgetMachine.settings = settings(max_examples=200, stateful_step_count=60, deadline=None)
