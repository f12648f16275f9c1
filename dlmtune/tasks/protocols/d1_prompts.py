"""d1's prompt constants (d1 arXiv 2504.12216), reproduced exactly because the protocol is defined by them.

These strings are data, not prose of ours: each is the system prompt of d1's evaluation for one task,
character for character (stray quote, trailing spaces and missing separators included), from the
repository dllm-reasoning/d1, files eval/gsm8k.py, eval/math500.py, eval/countdown.py and
eval/sudoku.py. wd1 (arXiv 2507.08838, repository xiaohangt/wd1, eval/) uses the same strings.
"""

from __future__ import annotations

from collections.abc import Sequence

# dllm-reasoning/d1 eval/gsm8k.py (GSM_SYSTEM_PROMPT); note the space before the first newline.
GSM8K_PROMPT = (
    "You are a math expert. You will be given a question to solve. Solve it step by step. Wrap the final "
    "answer in a \\boxed{}. \nRespond in the following format:\n<reasoning>\nYour reasoning here\n"
    "</reasoning>\n<answer>\n\\boxed{...}\n</answer>"
)
# dllm-reasoning/d1 eval/math500.py (MATH500_SYSTEM_PROMPT); note the stray '" ' before the last newline.
MATH500_PROMPT = (
    "You are a math expert. You will be given a question to solve. Solve it step by step. Wrap the final "
    "answer in a \\boxed{}.\nRespond in the following format:\n<reasoning>\nYour reasoning here\n"
    "</reasoning>\n<answer>\n\\boxed{...}\n</answer>\" \n"
)
# dllm-reasoning/d1 eval/countdown.py (CTD_SYSTEM_PROMPT); note "...b * c}Respond" without a separator.
COUNTDOWN_PROMPT = (
    "Using only the provided numbers, create an arithmetic expression that evaluates to exactly the "
    "provided target number. You may use the operations +, -, *, and / as needed, but each number must be "
    "used exactly once. Think step-by-step. After reasoning, provide only your final expression inside "
    "\\boxed{} tags without including an equals sign or the target number. For example: \\boxed{a + b * c}"
    "Respond in the following format:\n<reasoning>\nYour reasoning here\n</reasoning>\n<answer>\n"
    "\\boxed{...}\n</answer>"
)
# dllm-reasoning/d1 eval/sudoku.py (SUDOKU_SYSTEM_PROMPT); it opens and ends with a newline.
SUDOKU_PROMPT = (
    "\nPlease solve the following 4x4 Sudoku puzzle. The puzzle is provided as a 16-character string "
    "reading left-to-right, top-to-bottom, where '0' represents empty cells.\n\nRules:\n"
    "- Fill empty cells with digits 1-4\n- Each row must contain digits 1-4 exactly once\n"
    "- Each column must contain digits 1-4 exactly once\n- Each 2x2 box must contain digits 1-4 exactly once\n"
    "\nImportant: Your solution must be a COMPLETE 16-character string with only the digits 1-4, "
    "representing your final solved grid.\n\nRespond in this exact format:\n<reasoning>\n"
    "Your step-by-step solving process\n</reasoning>\n<answer>\n"
    "[16-character solution string with no spaces or separators]\n</answer>\n"
)

PROMPTS = {"gsm8k": GSM8K_PROMPT, "math500": MATH500_PROMPT, "countdown": COUNTDOWN_PROMPT, "sudoku": SUDOKU_PROMPT}


def few_shot_block(question: str, shots: Sequence[tuple[str, str]]) -> str:
    """d1's k-shot layout (eval/gsm8k.py, create_prompt): every solved example and then the question in
    one block of "Question: ...\\nAnswer:\\n..." paragraphs, all inside the single user turn."""
    examples = "\n\n".join(f"Question: {q}\nAnswer:\n{a}" for q, a in shots)
    return f"{examples}\n\nQuestion: {question}\nAnswer:\n"
