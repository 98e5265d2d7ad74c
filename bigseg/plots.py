"""Figures.  matplotlib is imported inside each function; nothing calls ``show()``.

Every function takes a lazy stack and computes only what it draws (a
projection, a few planes), and returns the matplotlib figure.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .io import scale_of
from .segment import as_4d

__all__ = ["orthogonal_projections"]


def orthogonal_projections(
    stack: xr.DataArray,
    nuclei: pd.DataFrame | None = None,
    *,
    t: int = 0,
    fig: Any = None,
    cmap: str = "gray",
) -> Any:
    """Max projections along z, y and x at physical aspect, with nucleus centres.

    Parameters
    ----------
    stack : xarray.DataArray
        The image (lazy is fine: only the three projections are computed).
    nuclei : pandas.DataFrame, optional
        Nuclei table; centres (``x_um, y_um, z_um``) are drawn coloured by id.
    t : int
        Time point to show.
    fig : matplotlib.figure.Figure, optional
        Figure to draw into; a new one by default.
    cmap : str
        Colour map of the image.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import dask
    import matplotlib.pyplot as plt

    four = as_4d(stack).isel(t=t)
    sz, sy, sx = scale_of(stack)
    nz, ny, nx = four.shape
    xy, xz, zy = dask.compute(four.max("z").data, four.max("y").data, four.max("x").data)
    z_ext, y_ext, x_ext = nz * sz, ny * sy, nx * sx
    if fig is None:
        width = 8.0
        height = width * (y_ext + z_ext) / (x_ext + z_ext)
        fig = plt.figure(figsize=(width, max(3.0, height)))
    grid = fig.add_gridspec(
        2, 2, width_ratios=[x_ext, z_ext], height_ratios=[y_ext, z_ext], wspace=0.05, hspace=0.05
    )
    ax_xy = fig.add_subplot(grid[0, 0])
    ax_zy = fig.add_subplot(grid[0, 1], sharey=ax_xy)
    ax_xz = fig.add_subplot(grid[1, 0], sharex=ax_xy)
    lo, hi = np.percentile(xy, [1, 99.8])
    style = {"cmap": cmap, "vmin": lo, "vmax": hi, "interpolation": "nearest"}
    ax_xy.imshow(xy, extent=(0, x_ext, y_ext, 0), **style)
    ax_zy.imshow(zy.T, extent=(0, z_ext, y_ext, 0), **style)
    ax_xz.imshow(xz, extent=(0, x_ext, z_ext, 0), **style)
    n_shown = 0
    if nuclei is not None and len(nuclei):
        sel = nuclei[nuclei["t"] == t] if "t" in nuclei else nuclei
        origin = stack.attrs.get("translation", {})
        zc = sel["z_um"] - origin.get("z", 0.0)
        yc = sel["y_um"] - origin.get("y", 0.0)
        xc = sel["x_um"] - origin.get("x", 0.0)
        colour = sel["nucleus"] if "nucleus" in sel else np.arange(len(sel))
        marker = {"c": colour, "cmap": "tab20", "s": 30, "marker": "+", "linewidths": 1.2}
        ax_xy.scatter(xc, yc, **marker)
        ax_zy.scatter(zc, yc, **marker)
        ax_xz.scatter(xc, zc, **marker)
        n_shown = len(sel)
    ax_xy.set_ylabel("y (µm)")
    ax_xz.set_xlabel("x (µm)")
    ax_xz.set_ylabel("z (µm)")
    ax_zy.set_xlabel("z (µm)")
    ax_xy.tick_params(labelbottom=False)
    ax_zy.tick_params(labelleft=False)
    ax_xy.set_title(f"Max projections, t = {t}: {n_shown} nuclei", loc="left", fontsize=10)
    return fig
