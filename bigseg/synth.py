"""Synthetic nuclei stacks with known truth, generated chunk by chunk.

Nuclei are ellipsoids (spheres in µm) with soft edges, on a dim background
with shot and read noise, in 12-bit range.  Every chunk is rendered from the
truth table alone, so the whole stack is never in memory and the result does
not depend on how it is chunked for writing, except for the noise, which is
seeded per chunk.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd

from ._errors import InputError
from .io import SPATIAL, write_ngff_image

__all__ = ["make_truth", "render", "synth"]

MAX_VALUE = 4095  # 12-bit camera range


def make_truth(
    shape: Sequence[int],
    nuclei: int,
    *,
    scale: Sequence[float] = (1.5, 0.71, 0.71),
    t: int = 1,
    radius_um: tuple[float, float] = (5.0, 8.0),
    brightness: tuple[float, float] = (1200.0, 2600.0),
    seed: int = 0,
    min_separation: float = 1.1,
) -> pd.DataFrame:
    """Draw nucleus centres, radii and brightness: the truth table.

    Nuclei are placed at random, each at least ``min_separation`` times the
    sum of the two radii from any other, and kept whole inside the stack in
    y and x.  Fewer than ``nuclei`` are placed when the volume is too full
    (the table says how many).

    Returns
    -------
    pandas.DataFrame
        Columns ``nucleus, t, z, y, x`` (px), ``z_um, y_um, x_um``, ``r_um``,
        ``brightness``.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"--shape {shape} must be three positive sizes Z Y X.")
    if nuclei < 0 or t < 1:
        raise InputError("--nuclei must be >= 0 and --t >= 1.")
    rng = np.random.default_rng(seed)
    extent = np.array(shape) * np.asarray(scale, float)
    rows = []
    for ti in range(t):
        placed: list[tuple[np.ndarray, float]] = []
        for _ in range(nuclei * 200):
            if len(placed) == nuclei:
                break
            r = rng.uniform(*radius_um)
            lo = np.array([0.0, r, r])
            hi = np.maximum(extent - np.array([scale[0], r, r]), lo)
            c = rng.uniform(lo, hi)
            if all(np.linalg.norm(c - pc) >= min_separation * (r + pr) for pc, pr in placed):
                placed.append((c, r))
        for c, r in placed:
            rows.append((ti, *c, r, rng.uniform(*brightness)))
    df = pd.DataFrame(rows, columns=["t", "z_um", "y_um", "x_um", "r_um", "brightness"])
    for name, step in zip(SPATIAL, scale):
        df[name] = df[f"{name}_um"] / step
    df.insert(0, "nucleus", np.arange(1, len(df) + 1))
    return df[["nucleus", "t", "z", "y", "x", "z_um", "y_um", "x_um", "r_um", "brightness"]]


def render(
    truth: pd.DataFrame,
    block_start: Sequence[int],
    block_shape: Sequence[int],
    *,
    scale: Sequence[float],
    background: float = 100.0,
    noise_seed: int = 0,
    edge_um: float = 0.6,
) -> np.ndarray:
    """Render one ``(t, z, y, x)`` block of the synthetic stack as uint16."""
    t0, z0, y0, x0 = (int(v) for v in block_start)
    nt, nz, ny, nx = (int(v) for v in block_shape)
    sz, sy, sx = (float(v) for v in scale)
    out = np.full((nt, nz, ny, nx), background, np.float64)
    zz = (z0 + np.arange(nz)) * sz
    yy = (y0 + np.arange(ny)) * sy
    xx = (x0 + np.arange(nx)) * sx
    for row in truth.itertuples(index=False):
        ti = int(row.t) - t0
        if not 0 <= ti < nt:
            continue
        reach = row.r_um + 4 * edge_um
        zs = np.flatnonzero(np.abs(zz - row.z_um) <= reach)
        ys = np.flatnonzero(np.abs(yy - row.y_um) <= reach)
        xs = np.flatnonzero(np.abs(xx - row.x_um) <= reach)
        if not (zs.size and ys.size and xs.size):
            continue
        dist = np.sqrt(
            (zz[zs, None, None] - row.z_um) ** 2
            + (yy[None, ys, None] - row.y_um) ** 2
            + (xx[None, None, xs] - row.x_um) ** 2
        )
        profile = row.brightness / (1 + np.exp((dist - row.r_um) / edge_um))
        region = (ti, slice(zs[0], zs[-1] + 1), slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
        out[region] += profile
    seed = [noise_seed, t0, z0, y0, x0]
    rng = np.random.default_rng(seed)
    noisy = rng.poisson(out) + rng.normal(0.0, 10.0, out.shape)
    return np.clip(np.rint(noisy), 0, MAX_VALUE).astype(np.uint16)


def _chunks(shape: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    _, nz, ny, nx = shape
    plane = ny * nx * 2
    if plane <= 64 * 2**20:
        return (1, max(1, min(nz, (8 * 2**20) // plane)), ny, nx)
    return (1, 1, min(ny, 4096), min(nx, 4096))


def synth(
    path: str | os.PathLike,
    *,
    shape: Sequence[int] = (24, 256, 256),
    nuclei: int = 40,
    t: int = 1,
    scale: Sequence[float] = (1.5, 0.71, 0.71),
    seed: int = 0,
    overwrite: bool = False,
    **truth_options: object,
) -> tuple[Path, Path]:
    """Write a synthetic OME-Zarr stack and its truth table.

    Parameters
    ----------
    path : path-like
        The OME-Zarr image to create (e.g. ``sample.ome.zarr``).
    shape : (Z, Y, X)
        Size of each time point.
    nuclei : int
        Nuclei per time point.
    t : int
        Time points; with ``t > 1`` the image has dims ``(t, z, y, x)``.
    scale : (z, y, x)
        Voxel size in µm.
    seed : int
        Seed of positions, sizes, brightness and noise.
    overwrite : bool
        Replace an existing ``path``.
    **truth_options
        Passed to :func:`make_truth`.

    Returns
    -------
    (Path, Path)
        The image and the truth CSV (``<name>_truth.csv`` beside the image).
    """
    path = Path(path)
    truth_path = truth_path_for(path)
    for p in (path, truth_path):
        if p.exists() and not overwrite:
            raise InputError(f"{str(p)!r} already exists; choose another name or pass --overwrite.")
    truth = make_truth(shape, nuclei, scale=scale, t=t, seed=seed, **truth_options)
    full = (t, *(int(s) for s in shape))
    template = da.empty(full, chunks=_chunks(full), dtype=np.uint16)
    image = da.map_blocks(
        _render_block,
        template,
        truth,
        tuple(scale),
        seed,
        dtype=np.uint16,
        meta=np.empty((0,) * 4, np.uint16),
    )
    dims: tuple[str, ...] = ("t", "z", "y", "x")
    if t == 1:
        image, dims = image[0], SPATIAL
    write_ngff_image(image, path, dims=dims, scale=dict(zip(SPATIAL, scale)), name="synthetic")
    truth.to_csv(truth_path, index=False)
    return path, truth_path


def truth_path_for(image_path: str | os.PathLike) -> Path:
    """Where :func:`synth` writes the truth table of ``image_path``."""
    p = Path(image_path)
    stem = p.name
    for suffix in (".ome.zarr", ".zarr"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return p.with_name(f"{stem}_truth.csv")


def _render_block(
    block: np.ndarray, truth: pd.DataFrame, scale: tuple, seed: int, block_info: dict | None = None
) -> np.ndarray:
    start = [lo for lo, _ in block_info[0]["array-location"]]
    return render(truth, start, block.shape, scale=scale, noise_seed=seed)
