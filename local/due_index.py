"""The in-memory table's sparse ``byExpiry`` index (``local.memory.MemoryStore.due``)."""

from __future__ import annotations

import bisect
import math


class DueIndex(dict):
    """The sparse ``byExpiry`` index, advertiser → deadline, a dict that also keeps its entries in
    deadline order (in buckets of ``BUCKET`` seconds), so the due query reads the advertisers due
    and no others, as DynamoDB's range query does: sorting every advertiser on every dispatcher run
    cost the simulation of 100,000 advertisers most of its time."""

    BUCKET = 60.0

    def __init__(self) -> None:
        super().__init__()
        self._buckets: dict[int, dict[str, float]] = {}
        self._numbers: list[int] = []  # the buckets there are, in order

    def _number(self, deadline: float) -> int:
        return math.floor(deadline / self.BUCKET) if math.isfinite(deadline) else (1 << 62 if deadline > 0 else -(1 << 62))

    def _file(self, key: str, deadline: float) -> None:
        number = self._number(deadline)
        bucket = self._buckets.get(number)
        if bucket is None:
            bucket = self._buckets[number] = {}
            bisect.insort(self._numbers, number)
        bucket[key] = deadline

    def _unfile(self, key: str, deadline: float) -> None:
        number = self._number(deadline)
        bucket = self._buckets[number]
        del bucket[key]
        if not bucket:
            del self._buckets[number]
            del self._numbers[bisect.bisect_left(self._numbers, number)]

    def __setitem__(self, key: str, deadline: float) -> None:
        if key in self:
            self._unfile(key, dict.__getitem__(self, key))
        dict.__setitem__(self, key, deadline)
        self._file(key, deadline)

    def __delitem__(self, key: str) -> None:
        self._unfile(key, dict.__getitem__(self, key))
        dict.__delitem__(self, key)

    _MISSING = object()

    def pop(self, key: str, default=_MISSING):
        if key in self:
            deadline = dict.__getitem__(self, key)
            del self[key]
            return deadline
        if default is DueIndex._MISSING:
            raise KeyError(key)
        return default

    def setdefault(self, key: str, default: float):
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *args, **kwargs) -> None:
        for key, deadline in dict(*args, **kwargs).items():
            self[key] = deadline

    def clear(self) -> None:
        dict.clear(self)
        self._buckets.clear()
        self._numbers.clear()

    def popitem(self):
        key, deadline = dict.popitem(self)
        self._unfile(key, deadline)
        return key, deadline

    def __ior__(self, other):
        self.update(other)
        return self

    def before(self, limit: float) -> list[tuple[str, float]]:
        """(advertiser, deadline) of every deadline before ``limit``, in no particular order."""
        last = self._number(limit)
        found: list[tuple[str, float]] = []
        for number in self._numbers:
            if number > last:
                break
            bucket = self._buckets[number]
            if number < last - 1:  # wholly before the limit (the last two are compared: rounding)
                found.extend(bucket.items())
            else:
                found.extend(item for item in bucket.items() if item[1] < limit)
        return found
