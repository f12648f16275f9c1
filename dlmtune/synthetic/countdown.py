"""Countdown with three numbers: solvable problems and a solver that writes its arithmetic.

Every problem uses all three numbers once with + - * and exact division, every intermediate being a
positive integer. The trace is one line per step, e.g. "7+5=12" then "12*3=36", and the answer is the
matching expression with only the parentheses it needs, e.g. "(7+5)*3".

The generated problems (the embedded demo's) have one-digit numbers and a target reachable by combining
them in the order given, left to right, (a op b) op c, with the intermediate a op b itself a one-digit
number: both steps are then facts of the one-digit tables the base model's corpus teaches. The solver
looks for such a solution first, so the trace copies the numbers in prompt order and the search left to
the model is the choice of two operators. The checker still accepts any expression, and the solver still
solves any problem (d1's numbers reach 100). Found while building the demo: the 0.9M-parameter model
learns in-order problems well above chance but problems with larger numbers in any order barely at all
(its traces used the wrong numbers), and its second steps went wrong far more often with a two-digit
intermediate than with one-digit ones, hence the one-digit intermediate.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Iterator, Sequence

OPS = "+-*/"
NUMBER_RANGE = (1, 9)
TARGET_RANGE = (1, 99)


def _apply(a: int, op: str, b: int) -> int | None:
    """a op b when it is a positive integer, else None."""
    if op == "+":
        value = a + b
    elif op == "-":
        value = a - b
    elif op == "*":
        value = a * b
    else:
        if b == 0 or a % b:
            return None
        value = a // b
    return value if value > 0 else None


def _needs_parens(inner: str, outer: str, inner_is_right: bool) -> bool:
    """Whether the inner pair must be bracketed inside the outer operation (left-associative rules)."""
    if inner in "+-" and outer in "*/":
        return True
    return inner_is_right and (outer == "/" or (outer == "-" and inner in "+-"))


def _combine(x: int, y: int, z: int, op1: str, op2: str, right: bool) -> tuple[str, list[str], int] | None:
    """(expression, steps, value) of (x op1 y) op2 z, or of z op2 (x op1 y) when `right`; None when a step is
    not a positive integer."""
    inner = _apply(x, op1, y)
    if inner is None:
        return None
    value = _apply(z, op2, inner) if right else _apply(inner, op2, z)
    if value is None:
        return None
    pair = f"{x}{op1}{y}"
    wrapped = f"({pair})" if _needs_parens(op1, op2, right) else pair
    expression = f"{z}{op2}{wrapped}" if right else f"{wrapped}{op2}{z}"
    last = f"{z}{op2}{inner}" if right else f"{inner}{op2}{z}"
    return expression, [f"{pair}={inner}", f"{last}={value}"], value


def in_order(numbers: Sequence[int]) -> Iterator[tuple[str, list[str], int]]:
    """(expression, steps, value) for (a op b) op c over the numbers in the order given, every operator pair
    whose intermediate a op b is itself a number in NUMBER_RANGE: both steps are then one-digit facts."""
    a, b, _ = numbers
    for op1, op2 in itertools.product(OPS, repeat=2):
        inner = _apply(a, op1, b)
        if inner is None or not NUMBER_RANGE[0] <= inner <= NUMBER_RANGE[1]:
            continue
        way = _combine(*numbers, op1, op2, right=False)
        if way is not None:
            yield way


def solutions(numbers: Sequence[int]) -> Iterator[tuple[str, list[str], int]]:
    """(expression, steps, value) for every way to combine all three numbers: the numbers in the order given
    first (`in_order`), then every order and both shapes, (x op y) op z and z op (x op y), which with three
    numbers cover every bracketing."""
    yield from in_order(numbers)
    for right in (False, True):
        for x, y, z in itertools.permutations(numbers):
            for op1, op2 in itertools.product(OPS, repeat=2):
                way = _combine(x, y, z, op1, op2, right)
                if way is not None:
                    yield way


def solve_with_trace(numbers: Sequence[int], target: int) -> tuple[str, list[str]]:
    """The first solution in search order: (expression, steps). Raises ValueError when there is none."""
    if len(numbers) != 3:
        raise ValueError(f"expected three numbers, got {list(numbers)}")
    for expression, steps, value in solutions(numbers):
        if value == target:
            return expression, steps
    raise ValueError(f"no way to make {target} from {list(numbers)}")


def random_problem(rng: random.Random) -> dict:
    """Three numbers in NUMBER_RANGE and, as target, one of the values in TARGET_RANGE that combining them in
    the order given reaches (each distinct value equally likely)."""
    while True:
        numbers = [rng.randint(*NUMBER_RANGE) for _ in range(3)]
        values = sorted({v for _, _, v in in_order(numbers) if TARGET_RANGE[0] <= v <= TARGET_RANGE[1]})
        if values:
            return {"numbers": numbers, "target": rng.choice(values)}


def problem_key(item: dict) -> tuple:
    """Identity of a problem: the same numbers in any order with the same target are one problem."""
    return tuple(sorted(item["numbers"])), item["target"]


@functools.cache
def distinct_problems() -> int:
    """How many distinct problems (sorted numbers and target) the generator can draw: 1226."""
    low, high = NUMBER_RANGE
    return len({problem_key({"numbers": numbers, "target": value})
                for numbers in itertools.product(range(low, high + 1), repeat=3)
                for _, _, value in in_order(numbers) if TARGET_RANGE[0] <= value <= TARGET_RANGE[1]})


def generate_problems(n: int, seed: int) -> list[dict]:
    """`n` distinct solvable problems, deterministic for `seed`; a shorter call gives a prefix. Raises
    ValueError when `n` is more than there are (the draw would never end)."""
    if n > distinct_problems():
        raise ValueError(f"asked for {n} distinct countdown problems (all splits together), but the generator "
                         f"has only {distinct_problems()}: ask for fewer")
    rng = random.Random(seed)
    items: dict[tuple, dict] = {}
    while len(items) < n:
        item = random_problem(rng)
        items.setdefault(problem_key(item), item)
    return list(items.values())
