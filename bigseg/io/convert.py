"""``bigseg convert``: TIFF stacks to chunked OME-Zarr 0.5, streamed, resumable, with a pyramid.

A TIFF page is one storage chunk: a worker that needs a quarter of a 2048² plane
reads the whole page, and a 20 000² page does not fit a small worker at all.
:func:`convert` copies any input :func:`bigseg.io.open_stack` reads (TIFF,
OME-TIFF, ImageJ hyperstacks, folders or patterns of TIFF files, Zarr) into an
OME-Zarr 0.5 image whose chunks suit bigseg's work blocks (:func:`storage_chunks`),
with the voxel size in µm and an image pyramid (mean of 2 x 2 (x 2) voxels, see
:func:`bigseg.io.ngff.pyramid_plan`).  By default each of those chunks is a Zarr
*shard* of small inner chunks (:data:`INNER`: one plane of up to 256² px): one file
per shard as before, but a work block or a viewer's tile decodes only the inner
chunks it needs (docs/view.md has the measurements).

Level 0 is written in *slabs*: the chunks of one t-chunk and one z-chunk, over
the whole plane.  A slab is read, rechunked and written, then the group's
``attributes["bigseg"]["convert"]`` records how many slabs and levels are done;
the process never holds more than a slab (and its chunks in flight) whatever
the size of the input.  An interrupted conversion is recognised by that record
and continued by running the same command again; an output that is not a
conversion of the same input with the same settings is refused and left
untouched, and so is the input.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np

from .._errors import InputError
from .ngff import WRITE_CONFIG, pyramid_levels, write_ngff_image
from .open import open_stack
from .tiff import TIFF_SUFFIXES

__all__ = ["CHUNK_BYTES", "INNER", "TILE", "convert", "convert_hint", "storage_chunks"]

#: The largest y/x side of a storage chunk: bigseg's planner splits a storage chunk into
#: near-equal work blocks that never straddle one, and a 1024² block is what it picks for a
#: 512 MiB worker on 2048² planes (docs/scale.md), so 1024² chunks split or merge evenly.
TILE = 1024

#: Bytes of one storage chunk aimed at: z planes are added to a chunk up to this size.
CHUNK_BYTES = 16 * 2**20

#: The inner chunks of a shard, per dim, at most: one time point, one plane, 256² px (a
#: grown work block read 3.5x faster than from whole 8 x 1024² chunks, a 512² tile of one
#: plane 20x, a whole shard 2x slower; docs/view.md).  ``bigseg.io.ngff.shard_chunks``
#: fits them to each shard.
INNER = {"t": 1, "z": 1, "y": 256, "x": 256}

#: A TIFF of untiled pages at least this large gets ``bigseg segment``'s suggestion.
HINT_BYTES = 2**30

_STATE = "convert"

#: Settings a conversion begun by an earlier bigseg did not record, as it wrote them.
_BEFORE = {"shards": False}


def storage_chunks(shape: Sequence[int], dims: Sequence[str], itemsize: int) -> tuple[int, ...]:
    """Chunks for bigseg's work blocks: one t, near-equal y/x tiles up to :data:`TILE`, z planes.

    Parameters
    ----------
    shape : sequence of int
        The image's shape, in the order of ``dims`` (``z, y, x`` or ``t, z, y, x``).
    dims : sequence of str
        Its dims.
    itemsize : int
        Bytes per voxel.

    Returns
    -------
    tuple of int
        One chunk shape, in the order of ``dims``: as many z planes as keep a chunk
        within :data:`CHUNK_BYTES` (at least one).
    """
    size = dict(zip(dims, (int(n) for n in shape)))
    tile = {d: -(-size[d] // -(-size[d] // TILE)) for d in ("y", "x")}
    plane = tile["y"] * tile["x"] * int(itemsize)
    chunk = {"t": 1, "z": max(1, min(size["z"], CHUNK_BYTES // max(plane, 1))), **tile}
    return tuple(chunk[d] for d in dims)


def convert(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    scale: Sequence[float] | None = None,
    channel: int | None = None,
    files_axis: str | None = None,
    pyramid: bool = True,
    shards: bool = True,
    threads: int | None = None,
    progress: bool = False,
) -> Path:
    """Copy a stack into a chunked OME-Zarr 0.5 image, slab by slab; continue an interrupted one.

    Parameters
    ----------
    source : path-like
        Anything :func:`bigseg.io.open_stack` opens: a TIFF, OME-TIFF or ImageJ
        hyperstack, a folder or pattern of TIFF files, a Zarr array.
    output : path-like
        A new path (by convention ``NAME.ome.zarr``), an empty folder, or an
        interrupted conversion of the same ``source`` with the same settings,
        which is continued.  Never the input, inside it, or around it.
    scale : sequence of float, optional
        Voxel size in µm, ``(z, y, x)`` (``(y, x)`` for 2D), overriding the
        file's metadata (as for ``open_stack``).
    channel : int, optional
        The channel to copy, when the input has several.
    files_axis : {"t", "z"}, optional
        What the files of a folder or pattern are (as for ``open_stack``).
    pyramid : bool
        Write the coarser levels too (mean downsampling, see
        :func:`bigseg.io.ngff.pyramid_plan`).
    shards : bool
        Store every chunk as a Zarr shard of inner chunks of at most :data:`INNER`
        (default); False: plain chunks, each a file decoded whole by any read.
    threads : int, optional
        Threads that read and write (default: up to 4 of the machine's cores);
        the process holds about a slab plus one chunk per thread.
    progress : bool
        Show a progress bar (slabs of level 0, then levels) on stderr.

    Returns
    -------
    pathlib.Path
        The output.

    Raises
    ------
    bigseg.InputError
        When the output is the input, or holds something that is not an
        unfinished conversion of it with these settings, or is finished already.
    """
    if "://" in os.fspath(output):
        raise InputError(
            f"Output {os.fspath(output)!r} is a URL; bigseg convert writes to a local path: "
            "convert there and copy the result."
        )
    out = Path(output)
    _refuse_input(os.fspath(source), out)
    stack = open_stack(source, scale=scale, channel=channel, files_axis=files_axis)
    dims = tuple(stack.dims)
    chunks = storage_chunks(stack.shape, dims, stack.dtype.itemsize)
    settings = {
        "input": _absolute(os.fspath(source)),
        "channel": channel,
        "shape": [int(n) for n in stack.shape],
        "dtype": str(stack.dtype),
        "chunks": list(chunks),
        "scale_um": {k: float(v) for k, v in stack.attrs["scale"].items()},
        "pyramid": bool(pyramid),
        "shards": [INNER[d] for d in dims] if shards else False,  # the inner chunks, at most
    }
    state = _existing(out, settings)
    slabs = _slabs(stack.shape, dims, chunks)
    if state is None:
        write_ngff_image(
            stack.data.rechunk(chunks),
            out,
            dims=dims,
            scale=stack.attrs["scale"],
            translation=stack.attrs.get("translation"),
            name=Path(os.fspath(source).rstrip("/")).name,
            compute=False,
            pyramid="mean" if pyramid else None,
            inner_chunks=settings["shards"] or None,
            # The time between frames, read from the input's metadata, kept as the t scale.
            frame_interval_s=stack.attrs.get("frame_interval_s") if "t" in dims else None,
        )
        state = {**settings, "slabs_done": 0, "levels_done": 0, "complete": False}
        _record(out, state)
    import zarr

    group = zarr.open_group(os.fspath(out), mode="r+")
    levels = len(group.attrs["ome"]["multiscales"][0]["datasets"])
    bar = _bar(progress, len(slabs) + levels - 1, state["slabs_done"] + state["levels_done"])
    workers = threads or min(4, os.cpu_count() or 1)
    with dask.config.set(scheduler="threads", num_workers=workers):
        target = group["0"].with_config(WRITE_CONFIG)
        for i in range(state["slabs_done"], len(slabs)):
            region = slabs[i]
            piece = stack.data[region].rechunk(chunks)
            da.store(piece, target, regions=region, lock=False)
            state["slabs_done"] = i + 1
            _record(out, state)
            bar.update(1)
        for level in pyramid_levels(out, start=state["levels_done"] + 1):
            level.compute()
            state["levels_done"] += 1
            _record(out, state)
            bar.update(1)
    state["complete"] = True
    _record(out, state)
    bar.close()
    return out


def _slabs(shape: Sequence[int], dims: Sequence[str], chunks: Sequence[int]) -> list[tuple]:
    """Regions of level 0, one per t-chunk and z-chunk, each over whole planes."""
    leading = [i for i, d in enumerate(dims) if d in ("t", "z")]
    ranges = [range(0, int(shape[i]), int(chunks[i])) for i in leading]
    regions = []
    for starts in np.ndindex(*(len(r) for r in ranges)):
        region = [slice(None)] * len(shape)
        for axis, r, k in zip(leading, ranges, starts):
            region[axis] = slice(r[k], min(r[k] + int(chunks[axis]), int(shape[axis])))
        regions.append(tuple(region))
    return regions


def _refuse_input(source: str, out: Path) -> None:
    """Refuse an output that is the input, lies inside it or holds it."""
    if "://" in source:
        return
    inputs = [Path(p).resolve() for p in _input_paths(source)]
    target = out.resolve()
    for path in inputs:
        if target == path or path in target.parents or target in path.parents:
            raise InputError(
                f"Output {str(out)!r} is (or holds, or lies inside) the input {source!r}; "
                "bigseg never writes over its input: choose another output."
            )


def _absolute(source: str) -> str:
    return source if "://" in source else os.path.abspath(source)


def _input_paths(source: str) -> list[str]:
    import glob

    if os.path.exists(source):
        return [source]
    return glob.glob(source)


def _existing(out: Path, settings: dict) -> dict | None:
    """Return the record of an unfinished conversion at ``out`` (None: a new output)."""
    if not out.exists() and not out.is_symlink():
        return None
    if out.is_dir() and not out.is_symlink() and not os.listdir(out):
        return None
    state = _read_state(out)
    where = str(out)
    if state is None:
        raise InputError(
            f"Output {where!r} exists and is not a conversion that bigseg began; it was left "
            "untouched. Choose another output."
        )
    changed = [k for k, v in settings.items() if state.get(k, _BEFORE.get(k)) != v]
    if changed:
        raise InputError(
            f"Output {where!r} is a conversion with other settings ({', '.join(changed)}); it "
            "was left untouched. Choose another output, or convert with its settings."
        )
    if state.get("complete"):
        raise InputError(
            f"Output {where!r} is a finished conversion of this input already; use it, or "
            "choose another output."
        )
    return state


def _read_state(out: Path) -> dict | None:
    import json

    try:
        meta = json.loads((out / "zarr.json").read_text())
        state = meta["attributes"]["bigseg"][_STATE]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(state, dict) or not {"slabs_done", "levels_done"} <= set(state):
        return None
    return state


def _record(out: Path, state: dict) -> None:
    import zarr

    group = zarr.open_group(os.fspath(out), mode="r+")
    bigseg = dict(group.attrs.get("bigseg", {}))
    bigseg[_STATE] = dict(state)
    group.attrs["bigseg"] = bigseg


def _bar(show: bool, total: int, done: int) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, initial=done, disable=not show, file=sys.stderr, unit="slab", leave=False
    )


def convert_hint(source: str | os.PathLike, nbytes: int) -> str | None:
    """Suggest converting a large TIFF of untiled pages first (None when not needed).

    Parameters
    ----------
    source : path-like
        The input of ``bigseg segment``.
    nbytes : int
        Its size as a stack (the selected channel).
    """
    path = os.fspath(source)
    if nbytes < HINT_BYTES or not path.lower().endswith(TIFF_SUFFIXES):
        return None
    if not os.path.isfile(path):
        return None
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            tiled = tif.pages.first.is_tiled
    except Exception:  # noqa: BLE001 - an unreadable file fails later, with its own message
        return None
    if tiled:
        return None
    size = f"{nbytes / 2**30:.1f} GiB"
    name = Path(path).stem
    return (
        f"{path} is a {size} TIFF of untiled pages, which every worker reads whole; "
        f"`bigseg convert {path} {name}.ome.zarr` makes a chunked OME-Zarr copy that workers "
        "read in parallel, chunk by chunk."
    )
