"""Countdown with three numbers: solvable problems and a solver that writes its arithmetic.

Every problem uses all three numbers once with + - * and exact division, every intermediate being a
positive integer. The trace is one line per step, e.g. "7+5=12" then "12*3=36", and the answer is the
matching expression with only the parentheses it needs, e.g. "(7+5)*3".
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence

OPS = "+-*/"
NUMBER_RANGE = (1, 20)
TARGET_RANGE = (1, 100)


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


def _solutions(numbers: Sequence[int]) -> Iterator[tuple[str, list[str], int]]:
    """(expression, steps, value) for every way to combine all three numbers, in a fixed order.

    Shapes are (x op y) op z and z op (x op y); with three numbers these cover every bracketing."""
    for x, y, z in itertools.permutations(numbers):
        for op1, op2 in itertools.product(OPS, repeat=2):
            inner = _apply(x, op1, y)
            if inner is None:
                continue
            pair = f"{x}{op1}{y}"
            for right in (False, True):
                value = _apply(z, op2, inner) if right else _apply(inner, op2, z)
                if value is None:
                    continue
                wrapped = f"({pair})" if _needs_parens(op1, op2, right) else pair
                expression = f"{z}{op2}{wrapped}" if right else f"{wrapped}{op2}{z}"
                last = f"{z}{op2}{inner}" if right else f"{inner}{op2}{z}"
                yield expression, [f"{pair}={inner}", f"{last}={value}"], value


def solve_with_trace(numbers: Sequence[int], target: int) -> tuple[str, list[str]]:
    """The first solution in search order: (expression, steps). Raises ValueError when there is none."""
    if len(numbers) != 3:
        raise ValueError(f"expected three numbers, got {list(numbers)}")
    for expression, steps, value in _solutions(numbers):
        if value == target:
            return expression, steps
    raise ValueError(f"no way to make {target} from {list(numbers)}")


def random_problem(rng: random.Random) -> dict:
    """Three numbers in NUMBER_RANGE and the value of a random expression over them in TARGET_RANGE."""
    while True:
        numbers = [rng.randint(*NUMBER_RANGE) for _ in range(3)]
        values = sorted({v for _, _, v in _solutions(numbers) if TARGET_RANGE[0] <= v <= TARGET_RANGE[1]})
        if values:
            return {"numbers": numbers, "target": rng.choice(values)}


def problem_key(item: dict) -> tuple:
    """Identity of a problem: the same numbers in any order with the same target are one problem."""
    return tuple(sorted(item["numbers"])), item["target"]


def generate_problems(n: int, seed: int) -> list[dict]:
    """`n` distinct solvable problems, deterministic for `seed`; a shorter call gives a prefix."""
    rng = random.Random(seed)
    items: dict[tuple, dict] = {}
    while len(items) < n:
        item = random_problem(rng)
        items.setdefault(problem_key(item), item)
    return list(items.values())
