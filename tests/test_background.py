"""A refresh step run in a forked child: its result, its errors and its death reach the parent."""

import os

import pytest

from engine import background


def _square_sum(values, offset):
    return sum(v * v for v in values) + offset


def _fails(text):
    raise ValueError(text)


def _dies():
    os._exit(3)


@pytest.mark.parametrize("fork", [True, False])
def test_the_result_is_the_same_forked_or_inline(fork):
    assert background.start(_square_sum, [1, 2, 3], 10, fork=fork).result() == 24


def test_an_error_in_the_child_is_raised_in_the_parent_with_its_traceback():
    with pytest.raises(background.BackgroundStepError, match="ValueError: no findings today") as raised:
        background.start(_fails, "no findings today", fork=True).result()
    assert "_fails" in str(raised.value)


def test_a_child_that_dies_is_an_error_not_a_hang():
    with pytest.raises(background.BackgroundStepError, match="exit code 3"):
        background.start(_dies, fork=True).result()
