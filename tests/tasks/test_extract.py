"""Shared answer extraction: balanced \\boxed{}, <answer> text, numbers."""

from __future__ import annotations

import pytest

from dlmtune.tasks.extract import all_boxed, answer_text, last_boxed, last_number, parse_number


def test_boxed_balanced_braces_and_order():
    text = r"first \boxed{\frac{1}{2}} then \boxed{ {a}_{b} } last \boxed{x^{2}+1}"
    assert all_boxed(text) == [r"\frac{1}{2}", " {a}_{b} ", "x^{2}+1"]
    assert last_boxed(text) == "x^{2}+1"


def test_nested_boxed_counts_once_and_unclosed_is_skipped():
    assert all_boxed(r"\boxed{\boxed{3}}") == [r"\boxed{3}"]
    assert all_boxed(r"\boxed{2 \boxed{7}") == ["7"]
    assert last_boxed(r"\boxed{oops") is None


def test_boxed_space_form_and_none():
    assert all_boxed(r"so \boxed 42$.") == ["42"]
    assert last_boxed("no box here") is None


def test_answer_text_takes_last_and_tolerates_missing_close():
    assert answer_text("<answer>1</answer> <answer> 2 </answer>") == " 2 "
    assert answer_text("<answer>\n7 and more") == "\n7 and more"
    assert answer_text("nothing") is None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("18", 18.0),
        ("1,234", 1234.0),
        ("\\$5", 5.0),
        ("$18.00", 18.0),
        ("-3", -3.0),
        (" 7. ", 7.0),
        ("50\\%", 50.0),
        (".5", 0.5),
    ],
)
def test_parse_number_accepts(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["x", "3x", "1/2", "", "\\frac{1}{2}", "2-3"])
def test_parse_number_rejects(text):
    assert parse_number(text) is None


def test_last_number_keeps_thousands_separators():
    assert last_number("paid 3 then 1,250 total") == "1,250"
    assert last_number("no digits") is None
