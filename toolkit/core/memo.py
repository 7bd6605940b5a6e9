"""What a pure function gave, remembered by its arguments for the process."""

from __future__ import annotations

from itertools import compress, islice, repeat
from operator import is_not


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

    def known_all(self, arguments) -> list:
        """known() of each of `arguments` (tuples), in C: a kept set's elements."""
        return list(map(self._values.get, arguments))

    def remember_all(self, values, arguments) -> None:
        """remember() each of `values` (None: not) for the arguments (tuples) at
        the same place, as far as the limit allows, with no call per value (a
        kept set's 50,000 elements; for 10,000 rules it measured as one by one,
        about 10 ms: hashing their texts is the cost)."""
        room = self._limit - len(self._values)
        if room > 0:
            values = list(values)
            pairs = compress(zip(arguments, values), map(is_not, values, repeat(None)))
            self._values.update(islice(pairs, room))

    def forget(self) -> None:
        self._values.clear()
