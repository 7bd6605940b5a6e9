"""What a pure function gave, remembered by its arguments for the process."""

from __future__ import annotations

from itertools import islice


class Remembered:
    """A pure function whose results are remembered by its arguments (at most
    `limit` of them, then forgotten all at once); `known` and `remember` let
    what an earlier process computed be given back (state/policy_loads.py).
    A call that raises remembers nothing."""

    def __init__(self, function, limit: int):
        self._function, self._limit = function, limit
        self._values: dict = {}

    def __call__(self, *arguments):
        value = self._values.get(arguments)
        if value is None:
            value = self._function(*arguments)
            if len(self._values) >= self._limit:
                self._values.clear()
            self._values[arguments] = value
        return value

    def known(self, *arguments):
        """The value remembered for these arguments, or None."""
        return self._values.get(arguments)

    def remember(self, value, *arguments) -> None:
        """`value` as what the function gives for these arguments."""
        if len(self._values) < self._limit:
            self._values[arguments] = value

    def remember_all(self, pairs) -> None:
        """remember() each (value, arguments) of `pairs` at once (a kept set's
        10,000 elements in a millisecond), as far as the limit allows."""
        room = self._limit - len(self._values)
        if room > 0:
            self._values.update(islice(((arguments, value) for value, arguments in pairs if value is not None), room))

    def forget(self) -> None:
        self._values.clear()
