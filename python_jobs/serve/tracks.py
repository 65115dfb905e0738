"""Time-ordered columns per key (a customer, a counterparty, a device): the online state's rows.

A Track holds one key's recent rows as numpy columns sorted by event time, with spare capacity
so that the usual case, a row later than every stored one, is an append. A late row (earlier
than stored ones) is inserted in place. Windows are index ranges found by binary search on the
time column: "the previous N seconds" of t is (t - N, t], the contract of ml/features.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

INITIAL_CAPACITY = 4


class Track:
    """Rows of one key, sorted by `ts` (epoch seconds); other columns per `dtypes`."""

    __slots__ = ("_columns", "n")

    def __init__(self, dtypes: Mapping[str, Any], capacity: int = INITIAL_CAPACITY) -> None:
        self._columns = {name: np.empty(capacity, dtype=dtype) for name, dtype in dtypes.items()}
        self.n = 0

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Track:
        """A track over rows already sorted by ts (the warm-up's bulk load)."""
        track = cls.__new__(cls)
        n = len(arrays["ts"])
        track._columns = {}
        for name, values in arrays.items():
            column = np.empty(max(n + n // 4, INITIAL_CAPACITY), dtype=values.dtype)
            column[:n] = values
            track._columns[name] = column
        track.n = n
        return track

    def __len__(self) -> int:
        return self.n

    def column(self, name: str) -> np.ndarray:
        return self._columns[name][: self.n]

    def insert(self, row: Mapping[str, Any]) -> int:
        """Adds a row after every stored row at or before its time; returns its position."""
        n = self.n
        ts = self._columns["ts"]
        position = (
            n
            if n == 0 or ts[n - 1] <= row["ts"]
            else int(np.searchsorted(ts[:n], row["ts"], side="right"))
        )
        if n == len(ts):
            capacity = max(2 * n, INITIAL_CAPACITY)
            for name, column in self._columns.items():
                grown = np.empty(capacity, dtype=column.dtype)
                grown[:n] = column[:n]
                self._columns[name] = grown
        for name, column in self._columns.items():
            if position < n:
                column[position + 1 : n + 1] = column[position:n]
            column[position] = row[name]
        self.n = n + 1
        return position

    def bounds(self, t: int, seconds: int) -> tuple[int, int]:
        """Index range of the rows in (t - seconds, t]."""
        ts = self._columns["ts"][: self.n]
        return (
            int(np.searchsorted(ts, t - seconds, side="right")),
            int(np.searchsorted(ts, t, side="right")),
        )

    def before(self, t: int) -> int:
        """Number of rows strictly earlier than t."""
        return int(np.searchsorted(self._columns["ts"][: self.n], t, side="left"))

    def find(self, ts: int, column: str, value: Any) -> int | None:
        """Position of the row at time `ts` whose `column` equals `value`."""
        times = self._columns["ts"][: self.n]
        lo = int(np.searchsorted(times, ts, side="left"))
        hi = int(np.searchsorted(times, ts, side="right"))
        values = self._columns[column]
        for i in range(lo, hi):
            if values[i] == value:
                return i
        return None

    def set(self, position: int, column: str, value: Any) -> None:
        self._columns[column][position] = value

    def remove(self, position: int) -> None:
        n = self.n
        for column in self._columns.values():
            column[position : n - 1] = column[position + 1 : n]
        self.n = n - 1

    def drop_before(self, t: int) -> int:
        """Forgets the rows earlier than t; returns how many."""
        k = self.before(t)
        if k:
            n = self.n
            for column in self._columns.values():
                column[: n - k] = column[k:n]
            self.n = n - k
        return k

    def nbytes(self) -> int:
        return sum(column.nbytes for column in self._columns.values())
