"""The data model: a stack is an xarray.DataArray with ``(t,) z, y, x`` dims in µm.

Every other module builds on these few helpers; this one imports no other
part of bigseg but its exception types and :mod:`bigseg.reads`.  A stack's ``attrs`` hold ``scale``
and ``translation`` (``{"z": .., "y": .., "x": ..}`` in µm), ``units``,
``source`` and ``format``; its coordinates are ``index * scale + translation``.
2D images and time-lapses are stacks of one plane per time point, whose z size
is unused (:data:`PLANAR_Z`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ._errors import InputError, ScaleWarning
from .reads import is_read, read_with_axis

__all__ = ["SPATIAL", "as_4d", "as_stack", "scale_of", "translation_of"]

#: The spatial dims, in array order.
SPATIAL = ("z", "y", "x")

#: The z size stored for a stack of one plane per time point (2D images): unused.
PLANAR_Z = 1.0
#: Voxel sizes outside this range (µm) are warned about: probably in nm, or in mm.
PLAUSIBLE_UM = (0.005, 50.0)


def as_stack(
    data: Any,
    *,
    scale: Sequence[float],
    dims: Sequence[str] | None = None,
    translation: Sequence[float] | None = None,
    source: str = "<array>",
    fmt: str = "array",
) -> xr.DataArray:
    """Wrap a NumPy or dask array as a bigseg stack with µm coordinates.

    Parameters
    ----------
    data : array-like
        2D ``(y, x)``, 3D ``(z, y, x)`` or 4D ``(t, z, y, x)`` image.
    scale : sequence of 3 floats
        Voxel size ``(z, y, x)`` in µm; ``(y, x)`` is enough for one plane
        (a 2D image or time-lapse), whose z size is unused and stored as 1.0.
    dims : sequence of str, optional
        Dim names; default ``("t", "z", "y", "x")[-ndim:]``.
    translation : sequence of 3 floats, optional
        Position of voxel 0 in µm, ``(z, y, x)``; default zeros.
    source, fmt : str
        Recorded in ``attrs`` for provenance.

    Returns
    -------
    xarray.DataArray
        See :func:`open_stack`.
    """
    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data), chunks=(1,) * (np.ndim(data) - 2) + (-1, -1))
    if dims is None:
        if not 2 <= data.ndim <= 4:
            raise InputError(
                f"An image must have 2, 3 or 4 dims (y, x / z, y, x / t, z, y, x), "
                f"not {data.ndim} (shape {data.shape})."
            )
        dims = ("t", "z", "y", "x")[-data.ndim :]
    dims = tuple(dims)
    if "z" not in dims:
        data = data[..., None, :, :]
        dims = dims[:-2] + ("z",) + dims[-2:]
    values = validated_scale(scale, "scale", data.shape[dims.index("z")])
    planar = data.shape[dims.index("z")] == 1
    warn_implausible(values, f"scale=({fmt_values(scale)})", planar=planar, stacklevel=3)
    return labelled(data, dims, values, translation, source, fmt)


def labelled(
    data: da.Array,
    dims: tuple[str, ...],
    scale: tuple[float, float, float],
    translation: Sequence[float] | None,
    source: str,
    fmt: str,
) -> xr.DataArray:
    """Label standard-dims ``data`` with a validated ``(z, y, x)`` scale (no checks)."""
    if data.dtype == np.float16:
        data = data.astype(np.float32)  # SciPy's filters have no float16 kernels
    translation = (0.0, 0.0, 0.0) if translation is None else tuple(float(v) for v in translation)
    coords: dict[str, Any] = {}
    for name, step, origin in zip(SPATIAL, scale, translation):
        n = data.shape[dims.index(name)]
        coords[name] = xr.Variable(name, origin + step * np.arange(n), {"units": "µm"})
    if "t" in dims:
        coords["t"] = np.arange(data.shape[dims.index("t")])
    attrs = {
        "scale": dict(zip(SPATIAL, scale)),
        "translation": dict(zip(SPATIAL, translation)),
        "units": "µm",
        "source": source,
        "format": fmt,
    }
    return xr.DataArray(data, dims=dims, coords=coords, attrs=attrs, name="image")


def scale_of(stack: xr.DataArray) -> tuple[float, float, float]:
    """Return the ``(z, y, x)`` voxel size in µm recorded on a stack."""
    try:
        s = stack.attrs["scale"]
        return (float(s["z"]), float(s["y"]), float(s["x"]))
    except (KeyError, TypeError):
        raise InputError(
            "The array has no voxel size in attrs['scale']; open it with "
            "bigseg.open_stack(..., scale=(z, y, x)) or bigseg.as_stack."
        ) from None


def validated_scale(scale: Sequence[float], what: str, n_z: int = 2) -> tuple[float, float, float]:
    """Return ``scale`` as ``(z, y, x)`` floats, or raise an InputError naming ``what``.

    With one plane (``n_z == 1``) a ``(y, x)`` pair is enough and the z size,
    unused, is :data:`PLANAR_Z`; a z size given for one plane is ignored.
    """
    planar = n_z == 1
    wanted = "three numbers (z y x), or two (y x) for a 2D image," if planar else "three numbers"

    def shown(values: Sequence[float]) -> str:  # scale=(1, 2, 3), or "The voxel size 1 2 3"
        return (
            f"{what}{fmt_tuple(values)}" if what.endswith("=") else f"{what} {fmt_values(values)}"
        )

    try:
        values = tuple(float(v) for v in scale)
    except (TypeError, ValueError):
        raise InputError(
            f"{what}{scale!r} must be {wanted} in µm."
            if what.endswith("=")
            else f"{what} must be {wanted} in µm, not {scale!r}."
        ) from None
    if len(values) == 2 and not planar:
        raise InputError(
            f"{shown(values)} gives only y x, but the stack has {n_z} planes: give "
            "three numbers z y x in µm (y x alone is for 2D images)."
        )
    if len(values) not in (2, 3):
        raise InputError(f"{shown(values)} must be {wanted} in µm, not {len(values)}.")
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise InputError(
            f"{shown(values)} must be positive, finite voxel sizes in µm "
            f"({'z y x' if len(values) == 3 else 'y x'})."
        )
    if planar:
        return (PLANAR_Z, values[-2], values[-1])
    return values  # type: ignore[return-value]


def fmt_values(values: Sequence[float | None]) -> str:
    return " ".join("?" if v is None else f"{v:g}" for v in values)


def fmt_tuple(values: Sequence[float | None]) -> str:
    """Show sizes as a Python tuple, ``(1.5, 0.71, 0.71)``, as a keyword argument takes them."""
    return "(" + ", ".join("?" if v is None else f"{float(v):g}" for v in values) + ")"


def warn_implausible(values: Sequence[float], what: str, *, planar: bool, stacklevel: int) -> bool:
    """Warn when a voxel size is far outside light microscopy's range (nm or mm given as µm).

    Returns whether it warned.  The size suggested is converted to µm, and given in Z Y X
    order where the values look given as X Y Z (z equal to y, x far from both).
    """
    used = values[1:] if planar else values
    lo, hi = PLAUSIBLE_UM
    if max(used) > hi:
        factor, unit, bound = 1 / 1000, "nm", f"more than {hi:g} µm"
    elif min(used) < lo:
        factor, unit, bound = 1000.0, "mm", f"less than {lo * 1000:g} nm"
    else:
        return False
    converted = [v * factor for v in used]
    if not planar and looks_xyz(converted):
        converted = converted[::-1]
    warnings.warn(
        f"{what} means voxels of {fmt_values(used)} µm, {bound}: bigseg takes µm in "
        f"{'Y X' if planar else 'Z Y X'} order; in {unit} that is "
        f"scale={fmt_tuple(converted)}.",
        ScaleWarning,
        stacklevel=stacklevel,
    )
    return True


def looks_xyz(values: Sequence[float]) -> bool:
    """Whether a ``(z, y, x)`` size looks given as X Y Z: z equal to y, x more than 2x off."""
    z, y, x = (float(v) for v in values)
    return math.isclose(z, y, rel_tol=0.02) and not 0.5 <= x / y <= 2


def translation_of(stack: xr.DataArray) -> tuple[float, float, float]:
    """Return the ``(z, y, x)`` position of voxel 0 in µm recorded on a stack (zeros if none)."""
    t = stack.attrs.get("translation") or {}
    return tuple(float(t.get(name, 0.0)) for name in SPATIAL)  # type: ignore[return-value]


def as_4d(stack: xr.DataArray) -> xr.DataArray:
    """Return the stack with a leading ``t`` dim (length 1 when it had none)."""
    if stack.dims == ("t", "z", "y", "x"):
        return stack
    if stack.dims == ("z", "y", "x"):
        four = stack.expand_dims("t", 0).assign_coords(t=[0])
        # a read of a file stays one (read again in work blocks, see bigseg.reads)
        return four.copy(data=read_with_axis(stack.data, 0)) if is_read(stack.data) else four
    raise InputError(
        f"A stack must have dims ('z', 'y', 'x') or ('t', 'z', 'y', 'x'), not {stack.dims}; "
        "open it with bigseg.open_stack."
    )
