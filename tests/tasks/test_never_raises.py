"""Every scorer takes any string: no exception, and 0 <= correct <= total."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlmtune.tasks import get_task

ITEMS = {
    "sudoku": {"puzzle": "1030002100000012", "solution": "1234342121434312"},
    "countdown": {"numbers": [3, 5, 7], "target": 36},
    "gsm8k": {"question": "q", "answer": "#### 72"},
    "math500": {"problem": "p", "answer": r"\frac{1}{2}"},
}
FRAGMENTS = st.sampled_from(
    [
        "\\boxed{",
        "}",
        "{",
        "<answer>",
        "</answer>",
        "```",
        "\\frac",
        "\\times",
        "=",
        "(",
        ")",
        "/",
        "0",
        "7",
        "1,2",
        "3.5",
        "$",
        "\\",
        " ",
        "\n",
        "12343421214343121",
    ]
)
COMPLETIONS = st.one_of(
    st.text(max_size=200), st.lists(st.one_of(FRAGMENTS, st.text(max_size=5)), max_size=30).map("".join)
)


@pytest.mark.parametrize("name", sorted(ITEMS))
@settings(max_examples=150, deadline=None)
@given(completion=COMPLETIONS)
def test_scorer_never_raises(name, completion):
    score = get_task(name).score(completion, ITEMS[name])
    assert 0.0 <= score.correct <= score.total
