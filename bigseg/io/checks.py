"""The checks every reader's array passes: shape limits, channel, dims, dtype, chunks."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import dask.array as da
import numpy as np

from .._errors import InputError
from ..reads import read_with_axis
from ..stack import SPATIAL

SUPPORTED_KINDS = "uif"  # unsigned, signed integer, float


#: Largest axis and voxel count bigseg accepts from a file's metadata: beyond them the
#: metadata is corrupt (no microscope writes such a stack), and merely indexing it
#: would allocate more than memory (coordinates, chunk lists).
MAX_AXIS = 2**24
MAX_VOXELS = 2**50


def check_shape(shape: Sequence[int], chunks: Sequence[int], dtype: np.dtype, what: str) -> None:
    """Refuse a declared shape no storage could hold, before anything is allocated for it."""
    if len(chunks) != len(shape) or any(int(c) < 1 and int(n) > 0 for n, c in zip(shape, chunks)):
        raise InputError(
            f"{what} declares chunks {tuple(chunks)} for shape {tuple(shape)}; chunk sizes must "
            "be positive, one per dim: its metadata is corrupt: repair or re-export it."
        )
    voxels = math.prod(int(n) for n in shape)
    n_chunks = math.prod(-(-int(n) // max(int(c), 1)) for n, c in zip(shape, chunks))
    if max(shape, default=0) > MAX_AXIS or voxels > MAX_VOXELS or n_chunks > MAX_VOXELS // 2**20:
        raise InputError(
            f"{what} declares shape {tuple(shape)} ({voxels} voxels of {dtype} in {n_chunks} "
            f"chunks), larger than bigseg accepts (at most {MAX_AXIS} per axis and "
            f"{MAX_VOXELS} voxels); its metadata is likely corrupt: repair or re-export it."
        )


def select_channel(
    data: da.Array, dims: tuple[str, ...], channel: int | None, path: str
) -> tuple[da.Array, tuple[str, ...]]:
    """Keep one channel of a ``c`` axis (the only one when it has size 1)."""
    if "c" not in dims:
        if channel not in (None, 0):
            raise InputError(f"Input {path!r} has no channel axis; drop channel={channel}.")
        return data, dims
    axis = dims.index("c")
    n = data.shape[axis]
    if channel is None:
        if n != 1:
            raise InputError(
                f"Input {path!r} has {n} channels; choose one with channel= (0 to {n - 1})."
            )
        channel = 0
    if not 0 <= channel < n:
        raise InputError(f"channel={channel} is out of range: {path!r} has channels 0 to {n - 1}.")
    index = tuple(channel if i == axis else slice(None) for i in range(data.ndim))
    return data[index], dims[:axis] + dims[axis + 1 :]


def to_standard_dims(
    data: da.Array, dims: tuple[str, ...], path: str
) -> tuple[da.Array, tuple[str, ...]]:
    """Order the dims as ``(t,) z, y, x``, adding a z axis of one plane to 2D data."""
    unknown = [d for d in dims if d not in ("t", "z", "y", "x")]
    if unknown or len(set(dims)) != len(dims) or not {"y", "x"} <= set(dims):
        raise InputError(
            f"Input {path!r} has dims {dims}; bigseg reads images with dims among "
            "t, c, z, y, x including y and x."
        )
    if "z" not in dims:
        data = read_with_axis(data, -3) if dims[-2:] == ("y", "x") else data
        dims = tuple(d for d in dims if d not in ("y", "x")) + ("z", "y", "x")
    order = [d for d in ("t", "z", "y", "x") if d in dims]
    axes = [dims.index(d) for d in order]
    if axes != list(range(data.ndim)):  # the read itself when in order (see in_work_chunks)
        data = data.transpose(axes)
    return data, tuple(order)


def check_dtype(dtype: np.dtype, path: str) -> None:
    """Refuse a dtype bigseg cannot segment (not an integer or float intensity)."""
    if dtype.kind not in SUPPORTED_KINDS or dtype.itemsize > 8:
        raise InputError(
            f"Input {path!r} has dtype {dtype}, which bigseg cannot segment; convert it "
            "to an integer (e.g. uint16) or float32 intensity image."
        )


def chunks_for(chunks: Mapping[str, int] | Sequence[int], dims: tuple[str, ...]) -> dict:
    """Turn ``chunks=`` (a mapping per dim or ``(z, y, x)``) into dask's per-axis chunks."""
    if isinstance(chunks, Mapping):
        bad = set(chunks) - set(dims)
        if bad:
            raise InputError(
                f"chunks={dict(chunks)} names dims {sorted(bad)} that the stack lacks ({dims})."
            )
        return {dims.index(d): c for d, c in chunks.items()}
    chunks = tuple(chunks)
    spatial = [d for d in dims if d in SPATIAL]
    if len(chunks) != len(spatial):
        raise InputError(f"chunks={chunks} must give one size per dim z, y, x.")
    if any(int(c) < 1 and int(c) != -1 for c in chunks):
        raise InputError(f"chunks={chunks} must be positive sizes (or -1 for a whole axis).")
    return {dims.index(d): int(c) for d, c in zip(spatial, chunks)}


def parse_chunks(text: str) -> tuple[int, int, int]:
    """Parse ``"Z,Y,X"`` (``-1`` for a whole axis) as given to ``--chunks``."""
    parts = [p for p in re.split(r"[,x\s]+", text.strip()) if p]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise InputError(f"chunks={text!r} must be three integers Z,Y,X (e.g. 4,-1,-1).") from None
    if len(values) != 3 or any(v == 0 or v < -1 for v in values):
        raise InputError(f"chunks={text!r} must be three positive integers Z,Y,X (-1: whole axis).")
    return values  # type: ignore[return-value]
