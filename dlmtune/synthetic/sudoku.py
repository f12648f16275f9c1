"""4x4 Sudoku (2x2 boxes): uniquely solvable puzzles and a human-style solver that writes its steps.

Grids are 16-character strings read row by row, "0" for an empty cell (d1's format). The solver fills
cells in rounds: each round fills every empty cell that a single fixes in the grid as it stood, so a
round's cells follow from earlier rounds only. The trace is two lines laid out like the grid, one
character per cell, so cell i sits at the same column of both lines and of the answer:

    the puzzle                          3004041000420000
    the rule that fixed each empty cell .Rn.n..nnR..RrnC   ("." on the givens)

The rule is the one that fixed the cell in the grid as it stood at the start of its round: r / c / b
(the cell is the last empty one in its row / column / box), n (naked single: row, column and box
together leave one digit) or R / C / B (hidden single: the digit fits in no other cell of the row /
column / box), the first that applies in that order. The layout is for the embedded
character-level model: a position-aligned trace is one it can learn in a few hundred steps, whereas
one `r2c3=4 n` line per cell asks it to map coordinates onto grid positions, which the 0.9M-parameter
model had not learned, barely above chance, after more steps than the aligned trace needed (a third line
giving each cell's round also did worse than two lines; both found while building the demo).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

SIZE = 4
DIGITS = "1234"
EMPTY = "0"
MAX_EMPTY = 12  # a 4x4 Sudoku needs at least 4 givens to be uniquely solvable

UNIT_KINDS = ("r", "c", "b")
UNITS: dict[str, list[tuple[int, ...]]] = {
    "r": [tuple(range(r * SIZE, (r + 1) * SIZE)) for r in range(SIZE)],
    "c": [tuple(range(c, SIZE * SIZE, SIZE)) for c in range(SIZE)],
    "b": [
        tuple((br + dr) * SIZE + bc + dc for dr in range(2) for dc in range(2))
        for br in (0, 2)
        for bc in (0, 2)
    ],
}
CELL_UNITS: list[dict[str, tuple[int, ...]]] = [
    {kind: next(u for u in units if cell in u) for kind, units in UNITS.items()}
    for cell in range(SIZE * SIZE)
]
PEERS: list[frozenset[int]] = [
    frozenset(i for unit in CELL_UNITS[cell].values() for i in unit) - {cell} for cell in range(SIZE * SIZE)
]


def candidates(grid: Sequence[str], cell: int) -> list[str]:
    """Digits not yet used by any peer of `cell`."""
    used = {grid[p] for p in PEERS[cell]}
    return [d for d in DIGITS if d not in used]


def is_solved(grid: str) -> bool:
    """Every row, column and box holds each digit once."""
    return all(sorted(grid[i] for i in unit) == list(DIGITS) for units in UNITS.values() for unit in units)


def count_solutions(puzzle: str, limit: int = 2) -> int:
    """Number of completions of `puzzle`, counting no further than `limit` (plain backtracking)."""
    grid = list(puzzle)

    def search() -> int:
        if EMPTY not in grid:
            return 1
        cell = grid.index(EMPTY)
        found = 0
        for digit in candidates(grid, cell):
            grid[cell] = digit
            found += search()
            grid[cell] = EMPTY
            if found >= limit:
                break
        return found

    return search()


def singles(grid: Sequence[str]) -> dict[int, tuple[str, str]]:
    """{cell: (digit, rule)} for every empty cell of `grid` that a single fixes, with the first rule (in
    the order r c b n R C B) that fixes it. Raises ValueError when an empty cell has no candidate left."""
    found = {}
    for cell in range(SIZE * SIZE):
        if grid[cell] != EMPTY:
            continue
        options = candidates(grid, cell)
        if not options:
            raise ValueError(f"no digit fits r{cell // SIZE + 1}c{cell % SIZE + 1}")
        last_empty = [kind for kind, unit in CELL_UNITS[cell].items() if sum(grid[i] == EMPTY for i in unit) == 1]
        if last_empty:
            found[cell] = options[0], last_empty[0]
        elif len(options) == 1:
            found[cell] = options[0], "n"
        else:
            for kind, unit in CELL_UNITS[cell].items():
                others = [i for i in unit if i != cell and grid[i] == EMPTY]
                hidden = [d for d in options if all(d not in candidates(grid, i) for i in others)]
                if hidden:
                    found[cell] = hidden[0], kind.upper()
                    break
    return found


def solve_in_rounds(puzzle: str) -> tuple[str, str, str]:
    """Solve by rounds of singles: (solution, the rule per cell, the round per cell), "." on the givens.

    Raises ValueError when the singles stall (several solutions, or guessing needed) or the givens
    conflict; every puzzle from `generate_puzzles` is solvable this way.
    """
    if len(puzzle) != SIZE * SIZE or set(puzzle) - set(DIGITS + EMPTY):
        raise ValueError(f"not a 4x4 puzzle: {puzzle!r}")
    grid, rules, rounds = list(puzzle), ["."] * (SIZE * SIZE), ["."] * (SIZE * SIZE)
    round_number = 0
    while EMPTY in grid:
        fixed = singles(grid)
        if not fixed:
            raise ValueError(f"singles cannot solve {puzzle!r}")
        round_number += 1
        for cell, (digit, rule) in fixed.items():
            grid[cell], rules[cell], rounds[cell] = digit, rule, str(round_number)
    solution = "".join(grid)
    if not is_solved(solution):
        raise ValueError(f"the givens of {puzzle!r} conflict")
    return solution, "".join(rules), "".join(rounds)


def solve_with_trace(puzzle: str) -> tuple[str, list[str]]:
    """The solution and the trace lines: the puzzle, then the rule that fixed each empty cell."""
    solution, rules, _ = solve_in_rounds(puzzle)
    return solution, [puzzle, rules]


def random_grid(rng: random.Random) -> str:
    """A full grid by backtracking over shuffled digits (any of the 288 grids can come out)."""
    grid = [EMPTY] * (SIZE * SIZE)

    def fill(cell: int) -> bool:
        if cell == SIZE * SIZE:
            return True
        options = candidates(grid, cell)
        rng.shuffle(options)
        for digit in options:
            grid[cell] = digit
            if fill(cell + 1):
                return True
        grid[cell] = EMPTY
        return False

    fill(0)
    return "".join(grid)


def _solvable(puzzle: str) -> bool:
    if count_solutions(puzzle) != 1:
        return False
    try:
        solve_with_trace(puzzle)
    except ValueError:
        return False
    return True


def random_puzzle(rng: random.Random, min_empty: int = 6, max_empty: int = 10) -> dict[str, str]:
    """One puzzle: a random full grid with cells removed, in random order, while the solution stays
    unique (and reachable by singles), until a randomly drawn number of cells in [min_empty, max_empty]
    is empty. Grids that cannot reach `min_empty` are redrawn."""
    if not 0 <= min_empty <= max_empty <= MAX_EMPTY:
        raise ValueError(f"need 0 <= min_empty <= max_empty <= {MAX_EMPTY}, got {min_empty}, {max_empty}")
    while True:
        solution = random_grid(rng)
        target = rng.randint(min_empty, max_empty)
        grid = list(solution)
        removed = 0
        for cell in rng.sample(range(SIZE * SIZE), SIZE * SIZE):
            if removed == target:
                break
            grid[cell] = EMPTY
            if _solvable("".join(grid)):
                removed += 1
            else:
                grid[cell] = solution[cell]
        if removed >= min_empty:
            return {"puzzle": "".join(grid), "solution": solution}


def generate_puzzles(n: int, seed: int, min_empty: int = 6, max_empty: int = 10) -> list[dict[str, str]]:
    """`n` distinct puzzles, deterministic for `seed`; a shorter call gives a prefix of a longer one."""
    rng = random.Random(seed)
    items: dict[str, dict[str, str]] = {}
    while len(items) < n:
        item = random_puzzle(rng, min_empty, max_empty)
        items.setdefault(item["puzzle"], item)
    return list(items.values())
