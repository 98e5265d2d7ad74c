"""An array of fixed shape and dtype in one uncompressed file, read and written by region.

A run's scratch copy of the default method's signal (float32, written once by the
threshold pass, read back grown by the segment pass) compresses by a tenth at best,
and through Zarr each region costs more in Zarr's own work than in decoding: reading a
block of 8 planes of 1024² took 2.8 ms of CPU per plane against 1.0 to decode it
(docs/speed.md).  Here a region is a few ``readinto``/``write`` calls at offsets of
the file, each one a run of the array's C order: a block of whole planes is one call.
Every call opens the file itself, so tasks on any thread or process read and write
their own regions of it at once, as they do a Zarr array's chunks.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["RawArray"]


class RawArray:
    """A C-order array in the file at ``path``, read (``a[box]``) and written (``a[box] = v``).

    Boxes are slices of step 1 (what dask's ``from_array`` and ``store`` ask for).
    """

    def __init__(self, path: str | os.PathLike, shape: Sequence[int], dtype: Any):
        self.path = os.fspath(path)
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @classmethod
    def create(cls, path: str | os.PathLike, shape: Sequence[int], dtype: Any) -> RawArray:
        """Create (or replace) the file, every value 0 until written."""
        array = cls(path, shape, dtype)
        with open(array.path, "wb") as f:
            f.truncate(array.nbytes)
        return array

    def __dask_tokenize__(self) -> tuple:
        return ("bigseg.io.raw.RawArray", self.path, self.shape, self.dtype.str)

    def __getitem__(self, key: Any) -> np.ndarray:
        box = self._box(key)
        out = np.empty([b - a for a, b in box], self.dtype)
        if out.size:
            offsets = self._offsets(box)
            with open(self.path, "rb") as f:
                for offset, run in zip(offsets, out.reshape(len(offsets), -1)):
                    f.seek(offset)
                    if f.readinto(memoryview(run).cast("B")) != run.nbytes:
                        raise OSError(f"{self.path} is shorter than {self.shape} {self.dtype}.")
        return out

    def __setitem__(self, key: Any, value: Any) -> None:
        box = self._box(key)
        shape = [b - a for a, b in box]
        values = np.ascontiguousarray(np.broadcast_to(np.asarray(value, self.dtype), shape))
        if values.size:
            offsets = self._offsets(box)
            with open(self.path, "r+b") as f:
                for offset, run in zip(offsets, values.reshape(len(offsets), -1)):
                    f.seek(offset)
                    f.write(memoryview(run).cast("B"))

    def _box(self, key: Any) -> list[tuple[int, int]]:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        if len(key) != self.ndim or not all(
            isinstance(k, slice) and k.step in (None, 1) for k in key
        ):
            raise IndexError(f"RawArray reads and writes boxes of slices of step 1, not {key!r}.")
        box = [k.indices(n)[:2] for k, n in zip(key, self.shape)]
        return [(a, max(a, b)) for a, b in box]

    def _offsets(self, box: list[tuple[int, int]]) -> list[int]:
        """Return the byte offsets of ``box``'s runs of the file, in C order.

        A run spans the box along one axis, every later axis whole: one per index of
        the axes before it (a box of whole planes is one run).
        """
        axis = len(box) - 1
        while axis > 0 and box[axis] == (0, self.shape[axis]):
            axis -= 1
        strides = [self.dtype.itemsize] * len(box)
        for k in range(len(box) - 2, -1, -1):
            strides[k] = strides[k + 1] * self.shape[k + 1]
        start = box[axis][0] * strides[axis]
        return [
            start + sum(i * s for i, s in zip(index, strides))
            for index in itertools.product(*(range(a, b) for a, b in box[:axis]))
        ]
