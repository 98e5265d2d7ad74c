"""Reading stacks lazily and writing labels and tables.

`open_stack` turns a TIFF, OME-TIFF, ImageJ hyperstack, OME-Zarr (0.4 or 0.5),
plain Zarr array, or a folder or glob pattern of TIFF files (one per time point
or plane) into an :class:`xarray.DataArray` with dims
``("z", "y", "x")`` or ``("t", "z", "y", "x")``, coordinates in µm and a dask
array whose chunks line up with the storage chunks.  Nothing is read until a
sink computes.

One module per format and direction: :mod:`~bigseg.io.open` (``open_stack``),
:mod:`~bigseg.io.tiff`, :mod:`~bigseg.io.sequence`, :mod:`~bigseg.io.zarr`
(readers), :mod:`~bigseg.io.scale` (voxel size from metadata and its checks),
:mod:`~bigseg.io.checks` (what every reader's array must pass),
:mod:`~bigseg.io.ngff` (image and label writers), :mod:`~bigseg.io.tables`
(``read_table``) and :mod:`~bigseg.io.objstore` (fsspec URLs).
"""

from .checks import parse_chunks
from .ngff import (
    MAX_LISTED_LABELS,
    PYRAMID_TILE,
    WRITE_CONFIG,
    nearest_levels,
    pyramid_levels,
    regular_chunks,
    writable,
    write_labels,
    write_ngff_image,
)
from .open import open_levels, open_stack
from .tables import read_table
from .tiff import TIFF_SUFFIXES

__all__ = [
    "MAX_LISTED_LABELS",
    "PYRAMID_TILE",
    "TIFF_SUFFIXES",
    "WRITE_CONFIG",
    "nearest_levels",
    "open_levels",
    "open_stack",
    "parse_chunks",
    "pyramid_levels",
    "read_table",
    "regular_chunks",
    "writable",
    "write_labels",
    "write_ngff_image",
]
