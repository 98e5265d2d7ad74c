"""Folders and glob patterns of TIFF files: one file per time point or per plane."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

import dask.array as da

from .._errors import InputError
from .tiff import TIFF_SUFFIXES, open_tiff
from .zarr import ZARR_METADATA


def _is_tiff_file(path: str) -> bool:
    name = os.path.basename(path)
    return (
        not name.startswith(".") and name.lower().endswith(TIFF_SUFFIXES) and os.path.isfile(path)
    )


def sequence_files(path: str) -> list[str] | None:
    """Return the TIFF files of a folder or glob pattern in natural order (None: not one).

    A folder with Zarr metadata is a Zarr store, not a sequence.  Hidden files
    (``._t000.tif`` from macOS) are left out, as are files that are not TIFF.
    """
    import tifffile

    if os.path.isdir(path):
        if any(os.path.exists(os.path.join(path, n)) for n in ZARR_METADATA):
            return None
        with os.scandir(path) as entries:
            files = [e.path for e in entries if _is_tiff_file(e.path)]
        if not files:
            raise InputError(
                f"Input {path!r} is a folder that is neither a Zarr store nor holds TIFF "
                "files (.tif/.tiff); give a Zarr image, a folder of TIFF files or a "
                f"pattern such as {os.path.join(path, '*.tif')!r}."
            )
        return tifffile.natural_sorted(files)
    if os.path.exists(path) or not glob.has_magic(path):
        return None
    matches = glob.glob(path)
    if not matches:
        raise InputError(
            f"The pattern {path!r} matches no files; check the folder and the pattern "
            "(e.g. 'planes/*.tif', quoted so that the shell leaves it to bigseg)."
        )
    files = [m for m in matches if _is_tiff_file(m)]
    if not files:
        raise InputError(
            f"The pattern {path!r} matches {len(matches)} file{'s' if len(matches) > 1 else ''} "
            "but no TIFF file (.tif/.tiff); bigseg reads sequences of TIFF files."
        )
    return tifffile.natural_sorted(files)


def open_sequence(
    files: Sequence[str], files_axis: str, path: str
) -> tuple[da.Array, tuple[str, ...], list | None, tuple, str]:
    """Open TIFF files lazily as one array, the files making the ``files_axis`` axis.

    Each file is opened as a single TIFF (its headers only, page-sized chunks);
    all must have the dims, shape and dtype of the first, whose metadata gives
    the voxel size.
    """
    if files_axis not in ("t", "z"):
        raise InputError(
            f"files_axis={files_axis!r} is not an axis the files can make; choose 't' "
            "(one file per time point) or 'z' (one file per plane)."
        )
    first, dims, meta_scale, translation, fmt = open_tiff(files[0])
    arrays = [first]
    for name in files[1:]:
        data, file_dims = open_tiff(name)[:2]
        if file_dims != dims or data.shape != first.shape or data.dtype != first.dtype:
            raise InputError(
                f"File {os.path.basename(name)!r} of {path!r} has shape {data.shape} "
                f"({''.join(file_dims)}) and dtype {data.dtype}, but the first file "
                f"{os.path.basename(files[0])!r} has shape {first.shape} ({''.join(dims)}) "
                f"and dtype {first.dtype}; every file of a sequence must match: re-export "
                "it or leave it out of the folder or pattern."
            )
        arrays.append(data)
    if files_axis == "z" and "t" in dims:
        raise InputError(
            f"The files of {path!r} have a time axis ({''.join(dims)}), so they cannot be "
            "the planes of one stack; open them with files_axis='t'."
        )
    if files_axis in dims:
        data = da.concatenate(arrays, axis=dims.index(files_axis))
    else:
        data, dims = da.stack(arrays, axis=0), (files_axis, *dims)
        if files_axis == "z":
            meta_scale = None  # single planes carry no z spacing: scale= must give it
    return data, dims, meta_scale, translation, f"{fmt}-sequence"
