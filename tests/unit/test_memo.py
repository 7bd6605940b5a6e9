"""core/memo.Remembered: a pure function's results, remembered by arguments."""

import pytest

from toolkit.core.memo import Remembered


def test_each_result_is_computed_once_and_a_failure_not_at_all():
    calls = []

    def square(n):
        calls.append(n)
        if n < 0:
            raise ValueError(n)
        return n * n

    squares = Remembered(square, limit=10)
    assert [squares(3), squares(3), squares(4)] == [9, 9, 16] and calls == [3, 4]
    for _ in range(2):
        with pytest.raises(ValueError):
            squares(-1)
    assert calls == [3, 4, -1, -1]
    assert squares.known(3) == 9 and squares.known(5) is None


def test_what_another_process_computed_is_given_back_and_the_limit_holds():
    doubled = Remembered(lambda n: 2 * n, limit=2)
    doubled.remember(99, 1)  # believed: given back by the caller that kept it
    assert doubled(1) == 99
    doubled(2)
    doubled.remember(6, 3)   # full: not taken
    assert doubled.known(3) is None
    doubled(3)               # full: everything forgotten, then this one kept
    assert doubled.known(1) is None and doubled.known(3) == 6
