"""Countdown generator and solver: solvable problems whose traces the task's checker accepts."""

from __future__ import annotations

import re

import pytest

from dlmtune.synthetic.countdown import (
    NUMBER_RANGE,
    TARGET_RANGE,
    generate_problems,
    problem_key,
    solve_with_trace,
)
from dlmtune.tasks import get_task

TASK = get_task("countdown")
STEP = re.compile(r"(\d+)([-+*/])(\d+)=(\d+)")
MAX_RESPONSE_CHARS = 90


@pytest.fixture(scope="module")
def problems() -> list[dict]:
    return [item for seed in range(200) for item in generate_problems(3, seed)]


def test_ranges(problems):
    for item in problems:
        assert len(item["numbers"]) == 3
        assert all(NUMBER_RANGE[0] <= n <= NUMBER_RANGE[1] for n in item["numbers"])
        assert TARGET_RANGE[0] <= item["target"] <= TARGET_RANGE[1]


def test_steps_are_true_positive_integer_arithmetic(problems):
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}
    for item in problems:
        _, steps = solve_with_trace(item["numbers"], item["target"])
        (a, op1, b, first), (c, op2, d, second) = (STEP.fullmatch(s).groups() for s in steps)
        assert ops[op1](int(a), int(b)) == int(first) > 0
        assert ops[op2](int(c), int(d)) == int(second) == item["target"]
        assert first in (c, d)
        used = sorted([int(a), int(b), int(d) if c == first else int(c)])
        assert used == sorted(item["numbers"])


def test_reference_response_scores_full_with_the_task_checker(problems):
    for item in problems:
        assert TASK.score(TASK.reference_response(item), item).correct == 1.0, item


def test_parentheses_only_where_needed():
    assert solve_with_trace([7, 5, 3], 36) == ("(7+5)*3", ["7+5=12", "12*3=36"])
    assert solve_with_trace([3, 4, 5], 17) == ("3*4+5", ["3*4=12", "12+5=17"])


def test_right_nested_forms_are_found():
    expression, steps = solve_with_trace([20, 2, 3], 4)  # 20/(2+3)
    assert expression == "20/(2+3)" and steps == ["2+3=5", "20/5=4"]
    expression, steps = solve_with_trace([9, 4, 3], 2)
    assert TASK.score(f"\\boxed{{{expression}}}", {"numbers": [9, 4, 3], "target": 2}).correct == 1.0


def test_unsolvable_raises():
    with pytest.raises(ValueError, match="no way"):
        solve_with_trace([1, 1, 1], 100)
    with pytest.raises(ValueError, match="three numbers"):
        solve_with_trace([1, 2], 3)


def test_deterministic_distinct_prefix_stable():
    first = generate_problems(100, seed=5)
    assert first == generate_problems(100, seed=5)
    assert generate_problems(30, seed=5) == first[:30]
    assert first != generate_problems(100, seed=6)
    assert len({problem_key(item) for item in first}) == 100


def test_problems_are_solvable_in_the_order_given_and_the_trace_says_so(problems):
    """The generated target is reached by (a op b) op c over the numbers as listed, and the solver finds that
    solution first, so the trace's first step starts with the first two numbers in prompt order."""
    for item in problems:
        a, b, _ = item["numbers"]
        _, steps = solve_with_trace(item["numbers"], item["target"])
        assert re.fullmatch(rf"{a}[-+*/]{b}=\d+", steps[0]), (item, steps)


def test_both_steps_are_one_digit_facts(problems):
    """The intermediate is itself a number in NUMBER_RANGE, so each step combines two one-digit numbers: the
    facts the base model's corpus teaches (two-digit steps were the tiny model's main Countdown error)."""
    for item in problems:
        _, steps = solve_with_trace(item["numbers"], item["target"])
        for step in steps:
            left, _, right, _ = STEP.fullmatch(step).groups()
            assert all(NUMBER_RANGE[0] <= int(n) <= NUMBER_RANGE[1] for n in (left, right)), (item, steps)


def test_the_generator_gives_every_distinct_problem_and_refuses_more():
    everything = generate_problems(1226, seed=0)
    assert len({problem_key(item) for item in everything}) == 1226
    with pytest.raises(ValueError, match="asked for 1227 .* only 1226: ask for fewer"):
        generate_problems(1227, seed=0)


def test_response_length_budget(problems):
    chars = [len(TASK.reference_response(item)) for item in problems]
    print(f"countdown responses: chars {min(chars)}-{max(chars)} mean {sum(chars) / len(chars):.1f}")
    assert max(chars) <= MAX_RESPONSE_CHARS
