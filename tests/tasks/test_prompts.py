"""Registry, generation defaults and the d1 prompt layout."""

from __future__ import annotations

import pytest

from dlmtune.tasks import TASKS, get_task

SUDOKU = {"puzzle": "3004041000420000", "solution": "3124241313424231"}
COUNTDOWN = {"numbers": [3, 5, 7], "target": 36}


def test_unknown_task_lists_known_names():
    with pytest.raises(ValueError, match="known tasks: sudoku, countdown, gsm8k, math500"):
        get_task("sudoku9x9")


@pytest.mark.parametrize(
    ("name", "gen_length"), [("sudoku", 512), ("countdown", 512), ("gsm8k", 256), ("math500", 256)]
)
def test_papers_generation_defaults(name, gen_length):
    task = get_task(name)
    assert (task.default_gen_length, task.default_block_length, task.default_steps) == (
        gen_length,
        32,
        gen_length // 2,
    )
    assert name in TASKS


def test_questions_use_d1_wording():
    assert get_task("countdown").question(COUNTDOWN) == "Numbers: [3, 5, 7]\nTarget: 36"
    assert get_task("sudoku").question(SUDOKU) == "Solve the following Sudoku puzzle: 3004041000420000\n"
    assert get_task("gsm8k").question({"question": "Q?", "answer": "#### 1"}) == "Q?"
    assert get_task("math500").question({"problem": "P?", "answer": "1"}) == "P?"


def test_user_turn_is_system_prompt_blank_line_question():
    task = get_task("countdown")
    assert task.messages(COUNTDOWN) == [
        {"role": "user", "content": task.system_prompt + "\n\n" + task.question(COUNTDOWN)}
    ]
    assert task.messages(COUNTDOWN, system_prompt="") == [
        {"role": "user", "content": task.question(COUNTDOWN)}
    ]
    assert task.messages(COUNTDOWN, system_prompt="Be brief.")[0]["content"].startswith(
        "Be brief.\n\nNumbers:"
    )


def test_shots_become_earlier_turns_with_reference_responses():
    task = get_task("sudoku")
    shot = task.generate(1, seed=3)[0]
    turns = task.messages(SUDOKU, system_prompt="", shots=[shot])
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[0]["content"] == task.question(shot)
    assert turns[1]["content"] == task.reference_response(shot)
    assert task.score(turns[1]["content"], shot).correct == task.score(turns[1]["content"], shot).total > 0


def test_prompt_is_chat_template_then_reasoning_tag(tokenizer):
    task = get_task("countdown")
    prompt = task.prompt(tokenizer, COUNTDOWN, system_prompt="")
    assert prompt == "<|user|>Numbers: [3, 5, 7]\nTarget: 36<|eot|><|assistant|><reasoning>"


def test_reference_responses_score_full_marks():
    for name, item in (
        ("sudoku", SUDOKU),
        ("countdown", COUNTDOWN),
        ("math500", {"problem": "p", "answer": r"\frac{1}{2}", "solution": "Half."}),
    ):
        task = get_task(name)
        score = task.score(task.reference_response(item), item)
        assert score.correct == score.total > 0, name
