"""4x4 Sudoku generator and trace solver, checked against an independent brute force."""

from __future__ import annotations

import itertools

import pytest

from dlmtune.synthetic.sudoku import count_solutions, generate_puzzles, solve_in_rounds, solve_with_trace
from dlmtune.tasks import get_task

TASK = get_task("sudoku")
MAX_RESPONSE_CHARS = 95  # two 16-character trace lines and the answer, whatever the puzzle


def _all_grids() -> list[str]:
    """Every valid 4x4 grid, by filtering all stacks of row permutations."""
    rows = ["".join(p) for p in itertools.permutations("1234")]
    grids = []
    for stack in itertools.product(rows, repeat=4):
        columns_ok = all(len({row[c] for row in stack}) == 4 for c in range(4))
        boxes_ok = all(
            len({stack[r][c] for r in rs for c in cs}) == 4
            for rs in ((0, 1), (2, 3))
            for cs in ((0, 1), (2, 3))
        )
        if columns_ok and boxes_ok:
            grids.append("".join(stack))
    return grids


GRIDS = _all_grids()


def brute_force_solutions(puzzle: str) -> list[str]:
    return [g for g in GRIDS if all(p in ("0", s) for p, s in zip(puzzle, g, strict=True))]


def test_brute_force_knows_all_288_grids():
    assert len(GRIDS) == 288


@pytest.fixture(scope="module")
def puzzles() -> list[dict]:
    return [item for seed in range(100) for item in generate_puzzles(3, seed)]


def test_every_puzzle_has_exactly_one_solution(puzzles):
    for item in puzzles:
        assert brute_force_solutions(item["puzzle"]) == [item["solution"]], item


def test_empty_cell_counts_respect_bounds(puzzles):
    empties = [item["puzzle"].count("0") for item in puzzles]
    assert min(empties) >= 6 and max(empties) <= 10
    hard = generate_puzzles(20, seed=0, min_empty=11, max_empty=12)
    assert all(
        item["puzzle"].count("0") >= 11 and len(brute_force_solutions(item["puzzle"])) == 1 for item in hard
    )


def _unit(cell: int, kind: str) -> list[int]:
    row, col = divmod(cell, 4)
    if kind == "r":
        return [row * 4 + c for c in range(4)]
    if kind == "c":
        return [r * 4 + col for r in range(4)]
    top, left = row - row % 2, col - col % 2
    return [(top + r) * 4 + left + c for r in range(2) for c in range(2)]


def _fits(grid: list[str], cell: int, digit: str) -> bool:
    return all(grid[i] != digit for kind in "rcb" for i in _unit(cell, kind))


def _justified(grid: list[str], cell: int, digit: str, rule: str) -> bool:
    """Whether `rule` really forces `digit` into the empty `cell` of `grid`."""
    if rule in ("r", "c", "b"):
        unit = _unit(cell, rule)
        return [i for i in unit if grid[i] == "0"] == [cell] and digit not in {grid[i] for i in unit}
    if rule == "n":
        return [d for d in "1234" if _fits(grid, cell, d)] == [digit]
    others = [i for i in _unit(cell, rule.lower()) if i != cell and grid[i] == "0"]
    return _fits(grid, cell, digit) and not any(_fits(grid, i, digit) for i in others)


def test_trace_is_valid_round_by_round_and_scores_full(puzzles):
    """Every filled cell's rule holds in the grid as it stood before its round; givens are marked '.'."""
    for item in puzzles:
        solution, rules, rounds = solve_in_rounds(item["puzzle"])
        assert solve_with_trace(item["puzzle"]) == (solution, [item["puzzle"], rules])
        assert solution == item["solution"]
        empty = [i for i, d in enumerate(item["puzzle"]) if d == "0"]
        assert [i for i, r in enumerate(rules) if r != "."] == empty == [i for i, r in enumerate(rounds) if r != "."]
        assert set(rules) <= set(".rcbnRCB")
        grid = list(item["puzzle"])
        for number in range(1, int(max(rounds[i] for i in empty)) + 1):
            cells = [i for i in empty if rounds[i] == str(number)]
            assert cells, (item, number)  # rounds are numbered without gaps
            assert all(_justified(grid, i, solution[i], rules[i]) for i in cells), (item, number)
            for i in cells:
                grid[i] = solution[i]
        assert "".join(grid) == solution
        score = TASK.score(TASK.reference_response(item), item)
        assert score.correct == score.total == len(empty)


def test_trace_rules_are_the_first_that_apply():
    """r1c4 is the last empty cell of row 1; r1c1 of column 1 when its row has other gaps; a hidden single
    only when nothing simpler applies; a cell that needs an earlier round's digit waits for it."""
    assert solve_with_trace("1230341221434321")[1] == ["1230341221434321", "...r............"]
    assert solve_in_rounds("0000341221434321")[1:] == ("cccc............", "1111............")
    _, rules, rounds = solve_in_rounds("3004041000420000")
    assert (rules, rounds) == (".Rn.n..nnR..RrnC", ".11.1..111..1211")


def test_solver_rejects_ambiguous_and_invalid_puzzles():
    ambiguous = "1030002100000012"
    assert count_solutions(ambiguous) == 2 and len(brute_force_solutions(ambiguous)) == 2
    with pytest.raises(ValueError):
        solve_with_trace(ambiguous)
    for conflicting in ("1100000000000000", "1230000000000004"):
        with pytest.raises(ValueError):
            solve_with_trace(conflicting)
    with pytest.raises(ValueError):
        solve_with_trace("12345")


def test_generation_is_deterministic_distinct_and_prefix_stable():
    first = generate_puzzles(50, seed=7)
    assert first == generate_puzzles(50, seed=7)
    assert generate_puzzles(20, seed=7) == first[:20]
    assert first != generate_puzzles(50, seed=8)
    assert len({item["puzzle"] for item in first}) == 50
    assert [solve_with_trace(i["puzzle"]) for i in first] == [solve_with_trace(i["puzzle"]) for i in first]


def test_response_length_budget(puzzles, tokenizer):
    responses = [TASK.reference_response(item) for item in puzzles]
    chars = [len(r) for r in responses]
    tokens = [len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in responses]
    print(
        f"sudoku responses: chars {min(chars)}-{max(chars)} mean {sum(chars) / len(chars):.1f}, "
        f"embedded tokens {min(tokens)}-{max(tokens)}"
    )
    assert max(chars) <= MAX_RESPONSE_CHARS
    assert max(tokens) <= 128
