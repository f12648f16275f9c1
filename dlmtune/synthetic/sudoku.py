"""4x4 Sudoku (2x2 boxes): uniquely solvable puzzles and a human-style solver that writes its steps.

Grids are 16-character strings read row by row, "0" for an empty cell (d1's format). The trace is
kept terse because the embedded model is character-level with a short generation budget: one line
per filled cell, `r<row>c<col>=<digit> <why>`, rows and columns counted from 1, where <why> is

    r / c / b     the cell is the last empty one in its row / column / box
    n             naked single: row, column and box together leave only this digit
    hr / hc / hb  hidden single: the digit fits in no other cell of the row / column / box

e.g. "r1c2=3 r". Each step names the first cell in reading order that some rule fixes, with the
first rule (in the order above) that fixes it.
"""

from __future__ import annotations

import random

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


def candidates(grid: list[str], cell: int) -> list[str]:
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


def _next_step(grid: list[str]) -> tuple[int, str, str] | None:
    """(cell, digit, reason) for the first empty cell in reading order that a rule fixes."""
    for cell in range(SIZE * SIZE):
        if grid[cell] != EMPTY:
            continue
        options = candidates(grid, cell)
        if not options:
            raise ValueError(f"no digit fits r{cell // SIZE + 1}c{cell % SIZE + 1}")
        for kind, unit in CELL_UNITS[cell].items():
            if sum(grid[i] == EMPTY for i in unit) == 1:
                return cell, options[0], kind
        if len(options) == 1:
            return cell, options[0], "n"
        for kind, unit in CELL_UNITS[cell].items():
            others = [i for i in unit if i != cell and grid[i] == EMPTY]
            for digit in options:
                if all(digit not in candidates(grid, i) for i in others):
                    return cell, digit, "h" + kind
    return None


def solve_with_trace(puzzle: str) -> tuple[str, list[str]]:
    """Solve by singles only, returning the solution and one trace line per filled cell.

    Raises ValueError when the singles stall (several solutions, or guessing needed) or the givens
    conflict; every puzzle from `generate_puzzles` is solvable this way.
    """
    if len(puzzle) != SIZE * SIZE or set(puzzle) - set(DIGITS + EMPTY):
        raise ValueError(f"not a 4x4 puzzle: {puzzle!r}")
    grid = list(puzzle)
    steps = []
    while EMPTY in grid:
        step = _next_step(grid)
        if step is None:
            raise ValueError(f"singles cannot solve {puzzle!r}")
        cell, digit, reason = step
        grid[cell] = digit
        steps.append(f"r{cell // SIZE + 1}c{cell % SIZE + 1}={digit} {reason}")
    solution = "".join(grid)
    if not is_solved(solution):
        raise ValueError(f"the givens of {puzzle!r} conflict")
    return solution, steps


def _random_grid(rng: random.Random) -> str:
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
        solution = _random_grid(rng)
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
