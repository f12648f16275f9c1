"""d1's protocol, rule by rule: each test holds a completion that shows the rule, with d1's verdict (as d1's
published scorer gives it) and, where they differ, dlmtune's. Completions are raw decodes (special tokens
kept) as d1 scores them; the dlmtune column reads the clean decode (cut at the first stop token)."""

from __future__ import annotations

import pytest

from dlmtune.tasks import PROTOCOLS, TASKS, get_task
from dlmtune.tasks.protocols.columns import score_columns
from dlmtune.tasks.protocols.d1_prompts import PROMPTS

EOT = "<|eot_id|><|endoftext|><|endoftext|>"


def verdicts(task_name: str, raw: str, item: dict) -> tuple[float, float]:
    """(dlmtune, d1) correct counts for one raw completion; dlmtune reads it cut at the first stop token."""
    clean = raw.split("<|eot_id|>")[0].split("<|endoftext|>")[0]
    scores = score_columns(task_name, clean, raw, item)
    return scores["dlmtune"]["correct"], scores["d1"]["correct"]


GSM = {"question": "q", "answer": "work\n#### 43500"}


@pytest.mark.parametrize(("raw", "answer", "expected"), [
    ("<answer>\n\\boxed{43,500}\n</answer>" + EOT, "#### 43500", (1.0, 0.0)),  # d1 reads the first number: 43
    ("<answer>\n\\boxed{-5}\n</answer>" + EOT, "#### -5", (1.0, 0.0)),  # d1 cannot read a negative gold
    ("\\boxed{12} then \\boxed{13}" + EOT, "#### 12", (1.0, 1.0)),  # both read the first box
    ("so the total is 18 dollars." + EOT, "#### 18", (1.0, 0.0)),  # no box, no tag: d1 has no fallback
    ("<answer>\n17.9999999\n</answer>" + EOT, "#### 18", (1.0, 0.0)),  # d1 compares floats exactly
    ("<answer>either 7 or 8</answer>" + EOT, "#### 8", (1.0, 1.0)),  # answer tag: its last number
    ("\\boxed{\\frac{1}{2}}" + EOT, "#### 1", (0.0, 1.0)),  # d1: box contents up to the first "}": "\frac{1"
    ("\\boxed{...} and \\boxed{9}" + EOT, "#### 9", (1.0, 1.0)),  # a box of dots is skipped
])
def test_gsm8k_rules(raw, answer, expected):
    assert verdicts("gsm8k", raw, {"question": "q", "answer": answer}) == expected


@pytest.mark.parametrize(("raw", "gold", "expected"), [
    ("<answer>\n\\boxed{\\frac{3}{24}}\n</answer>" + EOT, "\\frac18", (1.0, 0.0)),  # equivalent, not equal strings
    ("<answer>\n\\boxed{15.975}\n</answer>" + EOT, "\\frac{639}{40}", (1.0, 0.0)),
    ("<reasoning>so \\boxed{5</reasoning>\n<answer>5</answer>" + EOT, "5", (0.0, 1.0)),  # unclosed box -> tag
    ("<answer>\n5\n</answer>" + EOT, "5", (0.0, 0.0)),  # no box: d1 compares the whole completion
    ("\\boxed{\\dfrac{1}{2}}" + EOT, "\\frac12", (1.0, 1.0)),  # d1's normalisation: dfrac, \frac12
    ("\\boxed{x = 5}" + EOT, "5", (1.0, 1.0)),  # a short left side is dropped
    ("\\boxed{0.5}" + EOT, "\\frac{1}{2}", (1.0, 1.0)),
    ("\\boxed{x/2}" + EOT, "\\frac{x}{2}", (1.0, 0.0)),  # a/b with a non-integer side: raw strings compared
    ("the answer is $\\boxed 7$." + EOT, "7", (1.0, 1.0)),  # "\boxed 7" up to the "$"
])
def test_math500_rules(raw, gold, expected):
    assert verdicts("math500", raw, {"problem": "p", "answer": gold}) == expected


CD = {"numbers": [30, 100, 93], "target": 37}


@pytest.mark.parametrize(("raw", "item", "expected"), [
    # no \boxed: d1 scans the whole completion for the first "expr = number", here in the reasoning
    ("Try 100 - 93 = 7 first.\n<answer>\n30 + 100 - 93\n</answer>" + EOT, CD, (1.0, 0.0)),
    ("So 100 - 93 + 30 = 37 works.\n<answer>\nsee above\n</answer>" + EOT, CD, (0.0, 1.0)),
    ("\\boxed{30 + 100 - 93\n<answer>30 + 100 - 93</answer>" + EOT, CD, (1.0, 1.0)),  # unclosed box -> tag
    ("<answer>\\boxed{3**2*1}</answer>" + EOT, {"numbers": [3, 2, 1], "target": 9}, (0.0, 1.0)),  # d1 evals **
    ("\\boxed{100 \\div 4 - 3}" + EOT, {"numbers": [100, 4, 3], "target": 22}, (1.0, 1.0)),
    ("\\boxed{30 + 100 - 93 = 37}" + EOT, CD, (1.0, 1.0)),
    ("\\boxed{(30)(100) - 93}" + EOT, CD, (0.0, 0.0)),  # a call: Python raises, d1 gives inf
])
def test_countdown_rules(raw, item, expected):
    assert verdicts("countdown", raw, item) == expected


SUDOKU = {"puzzle": "0204032001400402", "solution": "1234432121433412"}
EMPTY = 8.0


@pytest.mark.parametrize(("raw", "expected"), [
    # d1 reads the first <answer>; dlmtune the last
    ("<answer>\n1111111111111111\n</answer> no, <answer>\n1234432121433412\n</answer>" + EOT, (EMPTY, 3.0)),
    # no tag: d1 takes the first 16-digit run, dlmtune the last
    ("first 0000000000000000 then 1234432121433412" + EOT, (EMPTY, 0.0)),
    # an answer tag closed by the stop token only (raw decode)
    ("<answer>\n1234432121433412<|eot_id|><|endoftext|>", (EMPTY, EMPTY)),
    # d1 keeps every character: separators shift the cells
    ("<answer>\n1,2,3,4,4,3,2,1,2,1,4,3,3,4,1,2\n</answer>" + EOT, (EMPTY, 2.0)),
])
def test_sudoku_rules(raw, expected):
    assert verdicts("sudoku", raw, SUDOKU) == expected


def test_wd1_is_d1():
    """wd1 evaluates with d1's eval code unchanged: the same task objects."""
    assert {"dlmtune", "d1", "wd1"} <= set(PROTOCOLS)
    for name in TASKS:
        assert get_task(name, "wd1") is get_task(name, "d1")
        assert get_task(name, "d1").raw_decode and not get_task(name).raw_decode


def test_unknown_protocol_is_named():
    with pytest.raises(ValueError, match="unknown protocol 'd2'.*d1"):
        get_task("gsm8k", "d2")


def test_zero_shot_prompt_is_one_user_turn_with_d1_system_prompt():
    messages = get_task("sudoku", "d1").messages(SUDOKU)
    assert messages == [{"role": "user", "content": PROMPTS["sudoku"] + "\n\n"
                         "Solve the following Sudoku puzzle: 0204032001400402\n"}]
    assert PROMPTS["math500"].endswith('</answer>" \n')  # d1's stray quote is part of the protocol


def test_k_shot_examples_share_the_user_turn_in_d1_layout():
    shot = {"question": "What is 2 + 2?", "answer": "2 + 2 = <<2+2=4>>4\n#### 4"}
    messages = get_task("gsm8k", "d1").messages({"question": "What is 3 + 3?", "answer": "#### 6"}, shots=[shot])
    assert len(messages) == 1
    assert messages[0]["content"] == (PROMPTS["gsm8k"] + "\n\nQuestion: What is 2 + 2?\nAnswer:\n"
                                      "2 + 2 = <<2+2=4>>4\n#### 4\n\nQuestion: What is 3 + 3?\nAnswer:\n")
    default = get_task("gsm8k").messages({"question": "What is 3 + 3?", "answer": "#### 6"}, shots=[shot])
    assert [m["role"] for m in default] == ["user", "assistant", "user"]  # dlmtune: separate turns
