"""Before a run starts: open the input, select time points, check the output and resume."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from .._errors import InputError
from ..io import objstore, open_stack
from ..reads import read_region
from .outputs import check_remote, check_replaceable
from .scratch import check_partial, regular


def open_input(
    source: str | os.PathLike | xr.DataArray,
    *,
    scale: Sequence[float] | None = None,
    chunks: Sequence[int] | None = None,
    channel: int | None = None,
    t: slice | int | None = None,
) -> tuple[xr.DataArray, str, list[int]]:
    """Return the stack to segment, the name of its source and its shape before ``t``."""
    if isinstance(source, xr.DataArray):
        stack = source
        source_name = str(stack.attrs.get("source", "<array>"))
    else:
        source_name = os.fspath(source)
        stack = open_stack(source, scale=scale, chunks=chunks, channel=channel)
    source_shape = list(stack.shape)
    if t is not None:
        stack = select_t(stack, t)
    return stack, source_name, source_shape


def check_resume(resume: bool, *, remote: bool, split: Any = None) -> None:
    """Refuse ``resume=True`` where it cannot work: object stores, blocks of several sizes.

    ``split`` is the data rechunked for stitching (None for whole planes).
    """
    if remote and resume:
        raise InputError(
            "resume=True needs a local output directory; an object-store output is written "
            "from the start (drop resume=True)."
        )
    if resume and split is not None and not regular(split.chunks):
        raise InputError(
            f"resume=True needs y/x blocks of one size (all but the last along each axis), "
            f"not chunks {tuple(split.chunks[2:])}; give chunks of one size or drop resume=True."
        )


def select_t(stack: xr.DataArray, t: slice | int) -> xr.DataArray:
    """Keep the time points ``t`` (a slice or one index) of a ``(t, z, y, x)`` stack."""
    if "t" not in stack.dims:
        raise InputError("The stack has no time axis; drop the time selection (t=).")
    n_t = stack.sizes["t"]
    index = slice(t, t + 1) if isinstance(t, int) else t
    kept = range(n_t)[index]
    if len(kept) == 0:
        raise InputError(
            f"The time selection {index.start}:{index.stop} keeps no time point; the stack "
            f"has time points 0 to {n_t - 1}."
        )
    part = stack.isel(t=index)
    if index.step not in (None, 1):
        return part
    box = tuple(index if d == "t" else slice(None) for d in stack.dims)
    return part.copy(data=read_region(stack.data, box))  # still read from the file


def check_output(
    out: Path | str | objstore.Remote, source: str, overwrite: bool, *, resume: bool = False
) -> None:
    """Refuse an output that is the input, inside it, contains it, or may not be replaced.

    An existing output is replaced only with ``overwrite`` and only when it is
    an earlier bigseg output holding nothing else; an empty directory is
    accepted as it is; missing parents are created when the run starts.
    Also refuses to start over the partial results of an interrupted run
    unless ``resume``.
    """
    if isinstance(out, objstore.Remote) or objstore.is_url(out):
        check_remote(objstore.location(out), overwrite)  # type: ignore[arg-type]
        return
    out = Path(out)
    src = Path(source).resolve() if os.path.exists(source) else None
    target = out.resolve()
    if src is None and glob.has_magic(source):  # a pattern: OUT must not be or hold its files
        files = (Path(f).resolve() for f in glob.glob(source))
        src = next((f for f in files if target == f or target in f.parents), None)
    if src is not None and (target == src or src in target.parents):
        raise InputError(
            f"Output {str(out)!r} is the input or inside it; choose an output outside {source!r}."
        )
    if src is not None and target in src.parents:
        raise InputError(
            f"Output {str(out)!r} contains the input {source!r}; replacing it would delete the "
            "input. Choose another output directory."
        )
    check_replaceable(out, overwrite)
    parent = _existing_ancestor(target.parent)
    if not parent.is_dir():
        raise InputError(
            f"Cannot create output {str(out)!r}: {str(parent)!r} is a file, not a directory."
        )
    if not os.access(parent, os.W_OK):
        raise InputError(f"Cannot write to {str(parent)!r}; choose a writable output location.")
    check_partial(out, resume)


def _existing_ancestor(path: Path) -> Path:
    """Return the nearest of ``path`` and its parents that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
