"""The pretraining corpus of the embedded base model (`synthetic:corpus`): domain knowledge and easier puzzles.

The base model plays the role LLaDA-8B-Instruct plays in the papers: when fine-tuning starts it
already knows the tasks' vocabulary and format and half-solves them, so its entropies over an answer
mean something (low on format tokens, high where a real decision is made), while fine-tuning still has
something to teach. So the corpus holds, in the chat and response format the tasks use:

- for three given numbers, every pairwise fact (`17-9=8`, one per line): the raw material of a
  Countdown search, but with no target, so nothing to search for;
- forward evaluation of small expressions, step by step, with the value boxed: the inverse of
  Countdown (which searches for the expression that reaches a value);
- for a partly filled 4x4 grid, the digits each empty cell's row, column and box leave open, one line
  per digit laid out like the grid (the layout of Sudoku traces), counting but never filling a cell;
- merging a partly filled grid with digits handed over for its empty cells: the answer's layout;
- easier instances of the two tasks, with the tasks' own prompts and solver traces: Sudoku puzzles
  with 2-5 empty cells (the demo's have 6-10) and Countdown problems that a sum a+b+c solves.

No held-out item of the demo is in the corpus. The easier instances are there because the tiny model
does not pick a task's layout up in a few hundred fine-tuning steps from documents in other layouts
(found while building the demo: without them fine-tuning left Sudoku near chance). Easy Countdown
instances are sums only, because with sums and differences the base already solved many of the demo's
problems and fine-tuning had little left to show; the arithmetic documents come twice in the rotation
because once left most one-digit facts unlearned.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

from dlmtune.synthetic.countdown import NUMBER_RANGE, TARGET_RANGE, in_order, problem_key, solutions
from dlmtune.synthetic.splits import DEFAULT_N_TEST, DEFAULT_N_VAL, make_splits
from dlmtune.synthetic.sudoku import DIGITS, EMPTY, SIZE, candidates, random_grid, random_puzzle
from dlmtune.tasks.base import boxed, format_response
from dlmtune.tasks.generated import GENERATED_TASKS

HELD_OUT_SEED = 0  # the seed of the evaluation splits kept out (the demo's: data.synthetic_seed of configs/tiny.yaml)


def _chat(question: str, response: str) -> dict[str, str]:
    return {"prompt": question, "response": response}


def pairs_document(rng: random.Random) -> dict[str, str]:
    """Three numbers, then every pair combined with every operator that gives a positive integer: the
    raw material of a Countdown search, read from the prompt, but with no target to reach."""
    numbers = [rng.randint(*NUMBER_RANGE) for _ in range(3)]
    lines = []
    for i, j in itertools.permutations(range(3), 2):
        a, b = numbers[i], numbers[j]
        for op, value in (("+", a + b), ("-", a - b), ("*", a * b), ("/", a // b if a % b == 0 else 0)):
            if value > 0 and (op not in "+*" or i < j):
                lines.append(f"{a}{op}{b}={value}")
    return _chat(f"Numbers: {numbers}", format_response(lines, str(len(lines))))


def evaluation_document(rng: random.Random) -> dict[str, str]:
    """Three numbers and an expression over them to evaluate, answered in Countdown's response format (the
    two steps, then the expression boxed): the forward direction of Countdown, which searches for the
    expression that reaches a target. The expression is given, so nothing is searched."""
    while True:
        numbers = [rng.randint(*NUMBER_RANGE) for _ in range(3)]
        ways = [w for w in solutions(numbers) if TARGET_RANGE[0] <= w[2] <= TARGET_RANGE[1]]
        if ways:
            expression, steps, value = rng.choice(ways)
            document = _chat(f"Numbers: {numbers}\nEvaluate: {expression}", format_response(steps, boxed(expression)))
            return document | {"item": ("countdown", problem_key({"numbers": numbers, "target": value}))}


def _partial_grid(rng: random.Random, low: int, high: int) -> tuple[str, str]:
    """A random valid full grid and a copy of it with all but `low`..`high` random cells emptied."""
    solution = random_grid(rng)
    keep = set(rng.sample(range(SIZE * SIZE), rng.randint(low, high)))
    return solution, "".join(d if i in keep else EMPTY for i, d in enumerate(solution))


def fill_document(rng: random.Random) -> dict[str, str]:
    """A partly filled grid and the digits of its empty cells, laid out like the grid ("." on the givens);
    the response writes both lines, then the merged grid: Sudoku's trace and answer layout, with the
    deductions handed over instead of made."""
    solution, grid = _partial_grid(rng, 4, 10)
    fills = "".join(solution[i] if d == EMPTY else "." for i, d in enumerate(grid))
    document = _chat(f"Fill in the grid {grid} with {fills}", format_response([grid, fills], solution))
    return document | {"item": ("sudoku", grid)}


def candidates_document(rng: random.Random) -> dict[str, str]:
    """The rule of Sudoku on a partly filled grid: for each digit, a line marking the empty cells its row,
    column and box leave open to it, laid out like the grid; the answer counts the cells left with one
    digit. Nothing is filled and nothing propagated."""
    _, grid = _partial_grid(rng, 4, 10)
    open_to = [candidates(grid, i) if d == EMPTY else [] for i, d in enumerate(grid)]
    lines = [grid] + ["".join(digit if digit in fits else "." for fits in open_to) for digit in DIGITS]
    singles = sum(len(fits) == 1 for fits in open_to)
    document = _chat(f"Which digits fit the empty cells of the grid {grid}?", format_response(lines, str(singles)))
    return document | {"item": ("sudoku", grid)}


EASY_SUDOKU_EMPTY = (2, 5)  # empty cells of the corpus's puzzles; the demo's have 6-10


def easy_sudoku_document(rng: random.Random) -> dict[str, str]:
    """A Sudoku puzzle with few empty cells, as the task asks it and the solver answers it."""
    item = random_puzzle(rng, *EASY_SUDOKU_EMPTY)
    task = GENERATED_TASKS["sudoku"]
    return _chat(task.question(item), task.reference_response(item)) | {"item": ("sudoku", item["puzzle"])}


def easy_countdown_document(rng: random.Random) -> dict[str, str]:
    """A Countdown problem whose answer is the sum a+b+c, as the task asks it and the solver answers it (an
    in-order sum is the solver's first try): the format and the steps, without the differences, products
    and quotients most demo problems need."""
    while True:
        numbers = [rng.randint(*NUMBER_RANGE) for _ in range(3)]
        targets = sorted({v for expression, _, v in in_order(numbers) if TARGET_RANGE[0] <= v <= TARGET_RANGE[1]
                          and not set(expression) & set("-*/")})
        if targets:
            item = {"numbers": numbers, "target": rng.choice(targets)}
            task = GENERATED_TASKS["countdown"]
            return _chat(task.question(item), task.reference_response(item)) | {"item": ("countdown", problem_key(item))}


DOCUMENTS: dict[str, Callable[[random.Random], dict[str, str]]] = {
    "pairs": pairs_document,
    "evaluation": evaluation_document,
    "fill": fill_document,
    "candidates": candidates_document,
    "sudoku": easy_sudoku_document,
    "countdown": easy_countdown_document,
}
# The order the corpus draws kinds in, round and round. The arithmetic kinds come twice: with each kind once
# the base learned too few of the one-digit facts (BENCHMARKS.md, "The base model's corpus").
KIND_ROTATION = ("pairs", "evaluation", "fill", "candidates", "sudoku", "countdown", "pairs", "evaluation")


def held_out_items() -> set[tuple]:
    """The evaluation items of the demo (test and validation splits of every generated task at the demo's
    data seed), as the keys documents are checked against: a Sudoku puzzle string; a Countdown problem's
    sorted numbers and target."""
    splits = {task: make_splits(task, 0, DEFAULT_N_VAL, DEFAULT_N_TEST, HELD_OUT_SEED) for task in ("sudoku", "countdown")}
    keys = {("sudoku", item["puzzle"]) for part in ("test", "val") for item in splits["sudoku"][part]}
    return keys | {("countdown", problem_key(item)) for part in ("test", "val") for item in splits["countdown"][part]}


def corpus(n: int, seed: int) -> list[dict[str, str]]:
    """`n` documents ({"prompt", "response"}, like SFT examples), the kinds in turn, deterministic for `seed`.
    A document about a held-out evaluation item (its puzzle grid; its numbers with an expression reaching its
    target) is drawn again, so the base never sees one."""
    rng = random.Random(seed)
    kinds = [DOCUMENTS[kind] for kind in KIND_ROTATION]
    held_out = held_out_items()
    documents = []
    for i in range(n):
        while True:
            document = kinds[i % len(kinds)](rng)
            if document.pop("item", None) not in held_out:
                break
        documents.append(document)
    return documents


