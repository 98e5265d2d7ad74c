"""``open_stack``: any supported input as a lazy ``(t,) z, y, x`` DataArray in µm."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import xarray as xr

from .._errors import InputError
from ..reads import in_work_chunks
from ..stack import labelled
from . import objstore
from .checks import check_dtype, chunks_for, select_channel, to_standard_dims
from .frames import frame_interval
from .scale import SCALE_KEYS, resolve_scale
from .sequence import open_sequence, sequence_files
from .tiff import TIFF_SUFFIXES, open_tiff
from .zarr import open_zarr


def open_stack(
    path: str | os.PathLike,
    *,
    scale: Sequence[float] | None = None,
    chunks: Mapping[str, int] | Sequence[int] | None = None,
    channel: int | None = None,
    files_axis: str | None = None,
) -> xr.DataArray:
    """Open a microscopy stack lazily as a labelled dask-backed array.

    Parameters
    ----------
    path : str or path-like
        A TIFF / OME-TIFF / ImageJ file, an OME-Zarr image group (NGFF 0.4 or
        0.5; the highest resolution level is used) or a Zarr array.  Zarr
        inputs may also be fsspec URLs (``s3://bucket/stack.zarr``;
        credentials from the environment).  A folder that is not a Zarr
        store, or a glob pattern (``"planes/*.tif"``), is a sequence of TIFF
        files in natural order (``t2`` before ``t10``), such as the Cell
        Tracking Challenge's ``t000.tif, t001.tif, ...``: all files must have
        one shape and dtype, and the voxel size comes from the first file.
    scale : sequence of 3 floats, optional
        Voxel size ``(z, y, x)`` in µm.  Overrides the file's metadata; needed
        when the file has none.  A 2D image or time-lapse (one plane per time
        point) needs only ``(y, x)``; its z size is unused and stored as 1.0.
        A value above 50 µm or below 5 nm, a probable X Y Z order, or a size
        more than 2x away from the file's metadata is warned about
        (:class:`bigseg.ScaleWarning`), naming both values.
    chunks : mapping or sequence, optional
        Dask chunks per dim (``{"z": 4}`` or ``(z, y, x)``); by default the
        storage chunks.
    channel : int, optional
        Which channel to keep when the data has a channel axis of size > 1.
    files_axis : {"t", "z"}, optional
        For a sequence of files: the axis the files make, ``"t"`` (the
        default; one file per time point) or ``"z"`` (one file per plane, or
        per slab of planes).  Files that have this axis themselves are joined
        along it.

    Returns
    -------
    xarray.DataArray
        Dims ``("z", "y", "x")`` or ``("t", "z", "y", "x")``; coordinates in µm
        (``z = index * scale_z + translation_z``); ``attrs`` hold ``scale``,
        ``translation`` (dicts of µm per spatial dim), ``scale_source``
        (``"option"`` or ``"metadata:<where>"``), ``chunks_source`` (``"option"``
        when ``chunks`` are given, else ``"storage"``), ``source`` and ``format``.
        A 2D image becomes a stack of one plane.

    Raises
    ------
    InputError
        When the path is missing or unreadable, the array is not an image
        bigseg can segment, or no voxel size is known.
    """
    path_str = os.fspath(path)
    remote = objstore.is_url(path_str)  # fsspec URL: Zarr / OME-Zarr on object storage
    if remote and path_str.lower().endswith(TIFF_SUFFIXES):
        raise InputError(
            f"Input {path_str!r}: TIFF inputs must be local files; convert to OME-Zarr to "
            "read from object storage."
        )
    files = None if remote else sequence_files(path_str)
    if files_axis is not None and files is None:
        raise InputError(
            f"files_axis={files_axis!r} applies to a folder or a glob pattern of TIFF files, "
            f"not to {path_str!r}; drop it."
        )
    if files is None and not remote and not os.path.exists(path_str):
        raise InputError(f"Input {path_str!r} does not exist; check the path.")
    if remote:
        objstore.configure_retries()
    if files is not None:
        data, dims, meta_scale, translation, fmt = open_sequence(
            files, "t" if files_axis is None else files_axis, path_str
        )
    elif remote or os.path.isdir(path_str):
        data, dims, meta_scale, translation, fmt = open_zarr(path_str)
    elif path_str.lower().endswith(TIFF_SUFFIXES):
        data, dims, meta_scale, translation, fmt = open_tiff(path_str)
    else:
        raise InputError(
            f"Input {path_str!r} is neither a TIFF file (.tif/.tiff) nor a Zarr "
            "directory; convert it to one of these formats."
        )
    if any(d not in ("t", "c", "z", "y", "x") for d in dims) or len(dims) > 5:
        raise InputError(
            f"Input {path_str!r} has dims {dims}; bigseg reads images with dims among "
            "t, c, z, y, x including y and x."
        )
    data, dims = select_channel(data, dims, channel, path_str)
    data, dims = to_standard_dims(data, dims, path_str)
    check_dtype(data.dtype, path_str)
    if any(n == 0 for n in data.shape):
        raise InputError(
            f"Input {path_str!r} has an empty axis (shape {dict(zip(dims, data.shape))}); "
            "it holds no image to segment."
        )
    n_z = data.shape[dims.index("z")]
    if files is not None and files_axis is None and n_z == 1 and len(files) > 1:
        _check_planes_as_time(scale, meta_scale, path_str, len(files))
    resolved = resolve_scale(scale, meta_scale, path_str, n_z)
    if chunks is not None:  # a file's read stays one: each block is read from the file
        data = in_work_chunks(data, data.rechunk(chunks_for(chunks, dims)).chunks)
    stack = labelled(data, dims, resolved, translation, path_str, fmt)
    if files is not None:
        stack.attrs["files"] = len(files)
        stack.attrs["files_axis"] = "t" if files_axis is None else files_axis
    # Provenance for run.json: where the voxel size came from, which channel was kept.
    kind = fmt.split("-0.")[0].removesuffix("-sequence")
    stack.attrs["scale_source"] = (
        "option" if scale is not None else f"metadata:{SCALE_KEYS.get(kind, fmt)}"
    )
    stack.attrs["channel"] = channel
    # Chunks asked for are kept as work blocks where they fit; storage chunks may be merged.
    stack.attrs["chunks_source"] = "option" if chunks is not None else "storage"
    if "t" in stack.dims:  # for speeds in µm/min (tracking)
        interval, where = frame_interval(path_str, fmt)
        if interval is not None:
            stack.attrs["frame_interval_s"] = interval
            stack.attrs["frame_interval_source"] = where
    return stack


def open_levels(path: str | os.PathLike) -> list:
    """Open the resolution levels of an OME-Zarr image, full resolution first (lazy).

    Level 0 is read as :func:`open_stack` reads it; the coarser levels listed by
    ``multiscales[0].datasets`` follow (an image without a pyramid gives one level).
    """
    import dask.array as da
    import zarr

    first = open_stack(path).data
    group = zarr.open_group(os.fspath(path), mode="r")
    attrs = dict(group.attrs)
    datasets = attrs.get("ome", attrs)["multiscales"][0]["datasets"]
    return [first] + [da.from_zarr(group[d["path"]]) for d in datasets[1:]]


def _check_planes_as_time(scale, meta_scale, path: str, n_files: int) -> None:
    """Refuse single-plane files read as time points when a z size says they are a stack.

    Files of one plane each make the ``t`` axis by default; a ``scale`` with a z size, or
    none at all, may mean the planes of one stack, and a stack read as a time-lapse would
    silently lose its z step.
    """
    if scale is not None and len(tuple(scale)) == 3:
        raise InputError(
            f"Input {path!r} is {n_files} files of one plane each, read as time points by "
            f"default, and scale= gives a z step ({float(tuple(scale)[0]):g} µm): give "
            "files_axis='z' to read them as the planes of one stack, or scale=(y, x) for a "
            "2D time-lapse."
        )
    if scale is None and meta_scale is None:
        raise InputError(
            f"Input {path!r} is {n_files} files of one plane each and carries no pixel size; "
            "give scale=(y, x) in µm for a 2D time-lapse (e.g. scale=(0.71, 0.71)), or "
            "files_axis='z' and scale=(z, y, x) for the planes of one stack."
        )
