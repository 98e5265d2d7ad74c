"""The voxel size: read from each format's metadata, given as ``scale=``, checked.

Units are converted to µm; a size given with ``scale=`` is compared with the
file's and doubtful ones are warned about (:class:`bigseg.ScaleWarning`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

from .._errors import InputError, ScaleWarning
from ..stack import (
    PLANAR_Z,
    SPATIAL,
    fmt_tuple,
    fmt_values,
    looks_xyz,
    validated_scale,
    warn_implausible,
)

UNIT_TO_UM = {
    "micrometer": 1.0,
    "micron": 1.0,
    "um": 1.0,
    "µm": 1.0,
    "\u03bcm": 1.0,  # Greek mu
    "nanometer": 1e-3,
    "nm": 1e-3,
    "millimeter": 1e3,
    "mm": 1e3,
    "centimeter": 1e4,
    "cm": 1e4,
    "meter": 1e6,
    "m": 1e6,
}


#: The metadata each format's voxel size is read from (recorded as ``scale_source``).
SCALE_KEYS = {
    "ome-tiff": "OME-XML Pixels PhysicalSizeZ/Y/X",
    "imagej-tiff": "ImageJ spacing and TIFF X/YResolution",
    "ome-zarr": "multiscales coordinateTransformations scale",
}


def resolve_scale(
    scale: Sequence[float] | None, meta: list | None, path: str, n_z: int = 2
) -> tuple[float, float, float]:
    """Return an input's ``(z, y, x)`` voxel size; warn on doubtful ones."""
    planar = n_z == 1
    from_file = f"the metadata of {path!r}"
    if meta is not None and meta[0] is None and not planar:
        if scale is None:
            raise InputError(
                f"Input {path!r} has {n_z} planes and an x/y pixel size "
                f"({fmt_values(meta[1:])} µm) but no z step; give it as scale=(z, y, x) in µm "
                f"(e.g. scale={fmt_tuple([1.5, *meta[1:]])})."
            )
        meta = None  # nothing to compare z with; y/x compared below would be partial
    if meta is not None and meta[0] is None:
        meta = [PLANAR_Z, *meta[1:]]
    if scale is not None:
        values = validated_scale(scale, "scale=", n_z)
        unit = warn_implausible(values, f"scale={fmt_tuple(scale)}", planar=planar, stacklevel=4)
        if meta is not None:
            try:
                file_values = validated_scale(meta, from_file, n_z)
            except InputError:
                file_values = None  # unusable metadata: scale= replaces it
            if file_values is not None:
                _warn_contradiction(tuple(scale), values, file_values, path, planar)
        elif not planar and not unit:  # a wrong unit's warning suggests the order too
            _warn_xyz_order(values)
        return values
    if meta is None:
        if planar:
            raise InputError(
                f"Input {path!r} carries no pixel size; give it as scale=(y, x) in µm "
                "(e.g. scale=(0.71, 0.71))."
            )
        raise InputError(
            f"Input {path!r} carries no voxel size; give it as scale=(z, y, x) in µm "
            "(e.g. scale=(1.5, 0.71, 0.71))."
        )
    values = validated_scale(meta, f"The voxel size in {path!r}", n_z)
    warn_implausible(values, f"The metadata of {path!r}", planar=planar, stacklevel=4)
    return values


def _warn_xyz_order(values: Sequence[float]) -> None:
    """Warn when a ``(z, y, x)`` scale looks given as X Y Z: z equal to y, x far from both."""
    z, y, x = values
    if looks_xyz(values):
        warnings.warn(
            f"scale={fmt_tuple(values)} is read as z {z:g}, y {y:g}, x {x:g} µm: x differs from "
            f"y by more than 2x, which looks like X Y Z order; bigseg reads Z Y X (e.g. "
            f"scale={fmt_tuple(values[::-1])}).",
            ScaleWarning,
            stacklevel=4,
        )


def _warn_contradiction(
    given: tuple,
    values: tuple[float, float, float],
    file_values: tuple[float, float, float],
    path: str,
    planar: bool,
) -> None:
    """Warn when ``scale=`` is more than 2x away from the file's voxel size on some axis."""
    names = ("y", "x") if planar else SPATIAL
    pick = slice(1, 3) if planar else slice(0, 3)
    ours, theirs = values[pick], file_values[pick]
    far = [n for n, a, b in zip(names, ours, theirs) if not 0.5 <= a / b <= 2]
    if not far:
        return
    reversed_order = not planar and all(
        math.isclose(a, b, rel_tol=0.02) for a, b in zip(ours, theirs[::-1])
    )
    hint = (
        "it is the file's in reverse, X Y Z order: bigseg reads Z Y X"
        if reversed_order
        else f"check its units (µm) and order ({'Y X' if planar else 'Z Y X'})"
    )
    warnings.warn(
        f"scale={fmt_tuple(given)} differs by more than 2x in {', '.join(far)} from the voxel "
        f"size {fmt_values(theirs)} µm ({' '.join(names)}) in the metadata of {path!r}; bigseg "
        f"uses scale= ({hint}; drop scale= to use the file's).",
        ScaleWarning,
        stacklevel=4,
    )
