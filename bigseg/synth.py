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
from .io import write_ngff_image
from .pipeline.outputs import check_synthetic_replaceable
from .stack import SPATIAL

__all__ = ["make_truth", "render", "synth"]

MAX_VALUE = 4095  # 12-bit camera range

#: Named sets of :func:`make_truth` and :func:`render` options (``bigseg synth --difficulty``).
#: ``hard``: brightness log-normal over about tenfold, a quarter of the nuclei touching another,
#: a sixth stacked on another in z, 3 % saturated, and twice the read noise.
DIFFICULTY: dict[str, dict[str, dict[str, float]]] = {
    "easy": {"truth": {}, "render": {}},
    "hard": {
        "truth": {
            "brightness": (300.0, 3000.0),
            "brightness_spread": 10.0,
            "touching": 0.25,
            "stacked": 0.15,
            "saturated": 0.03,
        },
        "render": {"read_noise": 20.0},
    },
}


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
    brightness_spread: float | None = None,
    touching: float = 0.0,
    stacked: float = 0.0,
    saturated: float = 0.0,
) -> pd.DataFrame:
    """Draw nucleus centres, radii and brightness: the truth table.

    Nuclei are placed at random, each at least ``min_separation`` times the
    sum of the two radii from any other, and kept whole inside the stack in
    y and x.  Fewer than ``nuclei`` are placed when the volume is too full
    (the table says how many).  With one plane (``shape[0] == 1``, 2D images)
    every centre lies in that plane, so each nucleus is a disc of radius
    ``r_um``, and touching nuclei touch within the plane.

    The keywords after ``min_separation`` make harder stacks; at their
    defaults the table is the same as without them.

    Parameters
    ----------
    brightness_spread : float, optional
        When given, brightness is log-normal with median the geometric mean
        of ``brightness`` and 95 % of nuclei within a factor
        ``brightness_spread`` of each other (e.g. 10).
    touching : float
        Fraction of nuclei placed touching an earlier one (centres
        0.95 to 1.0 times the sum of the radii apart), in a random direction.
    stacked : float
        Fraction of nuclei placed touching an earlier one straight above or
        below it in z (within 15 degrees of the z axis); with one plane they
        touch within the plane instead.
    saturated : float
        Fraction of nuclei five times brighter than the camera's range.

    Returns
    -------
    pandas.DataFrame
        Columns ``nucleus, t, z, y, x`` (px), ``z_um, y_um, x_um``, ``r_um``,
        ``brightness``.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"shape={shape} must be three positive sizes (z, y, x).")
    if nuclei < 0 or t < 1:
        raise InputError(f"nuclei={nuclei} must be >= 0 and t={t} at least 1.")
    rng = np.random.default_rng(seed)
    extent = np.array(shape) * np.asarray(scale, float)
    rows = []
    hard = touching > 0 or stacked > 0
    for ti in range(t):
        placed: list[tuple[np.ndarray, float]] = []
        for _ in range(nuclei * 200):
            if len(placed) == nuclei:
                break
            r = rng.uniform(*radius_um)
            lo = np.array([0.0, r, r])
            hi = np.maximum(extent - np.array([scale[0], r, r]), lo)
            partner = -1
            if hard and placed and rng.uniform() < touching + stacked:
                c, partner = _touching_centre(
                    rng, placed, r, stacked / (touching + stacked), planar=shape[0] == 1
                )
                if np.any(c < lo) or np.any(c > hi):
                    continue
            else:
                c = rng.uniform(lo, hi)
            if all(
                np.linalg.norm(c - pc) >= min_separation * (r + pr)
                for k, (pc, pr) in enumerate(placed)
                if k != partner
            ):
                placed.append((c, r))
        for c, r in placed:
            rows.append((ti, *c, r, _brightness(rng, brightness, brightness_spread, saturated)))
    df = pd.DataFrame(rows, columns=["t", "z_um", "y_um", "x_um", "r_um", "brightness"])
    for name, step in zip(SPATIAL, scale):
        df[name] = df[f"{name}_um"] / step
    df.insert(0, "nucleus", np.arange(1, len(df) + 1))
    return df[["nucleus", "t", "z", "y", "x", "z_um", "y_um", "x_um", "r_um", "brightness"]]


def _brightness(
    rng: np.random.Generator,
    brightness: tuple[float, float],
    spread: float | None,
    saturated: float,
) -> float:
    """One nucleus's brightness (draws exactly as before when the options are off)."""
    if spread is None:
        value = rng.uniform(*brightness)
    else:
        # 95 % of a log-normal lie within exp(±1.96 σ): a factor exp(3.92 σ) apart.
        sigma = np.log(spread) / 3.92
        value = float(np.sqrt(brightness[0] * brightness[1]) * rng.lognormal(0.0, sigma))
    if saturated > 0 and rng.uniform() < saturated:
        value = 5.0 * MAX_VALUE
    return value


def _touching_centre(
    rng: np.random.Generator,
    placed: list[tuple[np.ndarray, float]],
    r: float,
    p_stacked: float,
    *,
    planar: bool = False,
) -> tuple[np.ndarray, int]:
    """Return a centre touching a random earlier nucleus, and that nucleus's index.

    With ``planar`` the direction lies in the y/x plane (2D images).
    """
    k = int(rng.integers(len(placed)))
    pc, pr = placed[k]
    if planar:
        rng.uniform()  # the draws of the 3D case, so that seeds stay comparable
        direction = rng.normal(size=3)
        direction[0] = 0.0
        direction /= np.linalg.norm(direction)
    elif rng.uniform() < p_stacked:
        tilt = np.deg2rad(rng.uniform(0.0, 15.0))
        phi = rng.uniform(0.0, 2 * np.pi)
        sign = rng.choice([-1.0, 1.0])
        direction = np.array(
            [sign * np.cos(tilt), np.sin(tilt) * np.sin(phi), np.sin(tilt) * np.cos(phi)]
        )
    else:
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
    return pc + direction * rng.uniform(0.95, 1.0) * (r + pr), k


def render(
    truth: pd.DataFrame,
    block_start: Sequence[int],
    block_shape: Sequence[int],
    *,
    scale: Sequence[float],
    background: float = 100.0,
    noise_seed: int = 0,
    edge_um: float = 0.6,
    read_noise: float = 10.0,
    offset: float = 0.0,
    max_value: float = MAX_VALUE,
) -> np.ndarray:
    """Render one ``(t, z, y, x)`` block of the synthetic stack as uint16.

    Intensities are Poisson (shot noise) plus Gaussian read noise of
    ``read_noise`` grey levels plus a camera ``offset`` (noise-free, e.g.
    33000 grey levels), clipped to ``max_value`` (default the 12-bit range;
    at most 65535).
    """
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
    noisy = rng.poisson(out) + rng.normal(0.0, read_noise, out.shape) + offset
    return np.clip(np.rint(noisy), 0, min(max_value, 65535)).astype(np.uint16)


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
    difficulty: str = "easy",
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
        Replace an existing ``path`` (only a synthetic stack that bigseg wrote, and
        its truth table).
    difficulty : {"easy", "hard"}
        A named set of options from :data:`DIFFICULTY`; ``"easy"`` changes nothing.
    **truth_options
        Passed to :func:`make_truth` (over the difficulty's options).

    Returns
    -------
    (Path, Path)
        The image and the truth CSV (``<name>_truth.csv`` beside the image).
    """
    path = Path(path)
    truth_path = truth_path_for(path)
    for p in (path, truth_path):
        if p.exists() and not overwrite:
            raise InputError(
                f"{str(p)!r} already exists; choose another name or pass overwrite=True."
            )
    check_synthetic_replaceable(path, truth_path)
    if difficulty not in DIFFICULTY:
        raise InputError(
            f"Unknown difficulty={difficulty!r}; choose one of {', '.join(DIFFICULTY)}."
        )
    options = {**DIFFICULTY[difficulty]["truth"], **truth_options}
    render_options = dict(DIFFICULTY[difficulty]["render"])
    truth = make_truth(shape, nuclei, scale=scale, t=t, seed=seed, **options)
    full = (t, *(int(s) for s in shape))
    template = da.empty(full, chunks=_chunks(full), dtype=np.uint16)
    image = da.map_blocks(
        _render_block,
        template,
        truth,
        tuple(scale),
        seed,
        render_options,
        dtype=np.uint16,
        meta=np.empty((0,) * 4, np.uint16),
    )
    dims: tuple[str, ...] = ("t", "z", "y", "x")
    if t == 1:
        image, dims = image[0], SPATIAL
    write_ngff_image(
        image,
        path,
        dims=dims,
        scale=dict(zip(SPATIAL, scale)),
        name="synthetic",
        overwrite=True,  # checked above: only a synthetic stack bigseg wrote
    )
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
    block: np.ndarray,
    truth: pd.DataFrame,
    scale: tuple,
    seed: int,
    render_options: dict,
    block_info: dict | None = None,
) -> np.ndarray:
    start = [lo for lo, _ in block_info[0]["array-location"]]
    return render(truth, start, block.shape, scale=scale, noise_seed=seed, **render_options)
