"""Synthetic nuclei stacks with known truth, generated chunk by chunk.

Nuclei are ellipsoids (spheres in µm, or ovals in the y/x plane) with soft edges, on a dim
background with shot and read noise, in 12-bit range.  Every chunk is rendered from the
truth table alone, so the whole stack is never in memory and the result does
not depend on how it is chunked for writing, except for the noise, which is
seeded per chunk.

Options make the data of real microscopes: a camera offset (up to 33 000 grey
levels on 16 bits), a smooth autofluorescence over it, an uneven illumination
(a smooth multiplicative field), nuclear texture, small bright "mitotic"
nuclei, radius ranges in pixels; the smooth fields are sums of a few cosines
of the physical position, so they too are the same however the stack is
chunked.  :data:`KINDS` names sets of them that mimic data bigseg was not
tuned on (a dense 2D HeLa-like time-lapse, round or oval, held-out 3D stacks, a time series);
:func:`synth_kind` renders one in memory.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ._errors import InputError
from .io import write_ngff_image
from .pipeline.outputs import check_synthetic_replaceable
from .stack import SPATIAL

__all__ = [
    "KINDS",
    "make_truth",
    "moving_truth",
    "render",
    "synth",
    "synth_kind",
    "visible_centres",
    "write_ctc_truth",
]

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

#: The HeLa-like kinds' options (:data:`KINDS`), round nuclei.
_HELA2D: dict = {
    "shape": (1, 700, 1100),
    "nuclei": (120, 200),
    "t": 2,
    "scale": (1.0, 0.71, 0.71),
    "truth": {
        "radius_um": (4.5, 8.5),
        "brightness": (90.0, 1200.0),
        "brightness_spread": 13.0,
        "touching": 0.25,
        "mitotic": 0.1,
    },
    "render": {
        "background": 60.0,
        "offset": 33000.0,
        "max_value": 65535,
        "autofluorescence": 40.0,
        "illumination": 0.2,
        "texture": 0.15,
    },
}
#: Named kinds of data bigseg was not tuned on (``bigseg synth --kind``): the shape of one time
#: point, nuclei per time point (a range: each seed draws its count), time points, voxel size,
#: and the options of :func:`make_truth` and :func:`render`.
#:
#: ``hela2d``: a dense 16-bit 2D time-lapse of HeLa-like nuclei over a camera offset of 33 000,
#: 70-1 500 grey levels above it, many touching, a tenth small bright mitotic ones, uneven light.
#: ``ovals2d``: the same with oval nuclei, aspect ratios 1-2 in the plane, as most HeLa nuclei are.
#: ``heldout3d``: 3D stacks of nuclei of radius 4.5-12 px, brightness log-normal over tenfold,
#: 15 % touching, autofluorescence over a dark offset.  ``series``: the same kind, 4 time points.
KINDS: dict[str, dict] = {
    "hela2d": _HELA2D,
    "ovals2d": {**_HELA2D, "truth": {**_HELA2D["truth"], "elongation": (1.0, 2.0)}},
    "heldout3d": {
        "shape": (40, 384, 384),
        "nuclei": (120, 220),
        "t": 1,
        "scale": (1.5, 0.71, 0.71),
        "truth": {
            "radius_px": (4.5, 12.0),
            "brightness": (300.0, 3000.0),
            "brightness_spread": 10.0,
            "touching": 0.15,
        },
        "render": {
            "background": 40.0,
            "offset": 400.0,
            "max_value": 65535,
            "autofluorescence": 150.0,
            "texture": 0.1,
        },
    },
    "series": {
        "shape": (16, 256, 256),
        "nuclei": (25, 40),
        "t": 4,
        "scale": (1.5, 0.71, 0.71),
        "truth": {
            "radius_px": (4.5, 12.0),
            "brightness": (300.0, 3000.0),
            "brightness_spread": 10.0,
            "touching": 0.15,
        },
        "render": {
            "background": 40.0,
            "offset": 400.0,
            "max_value": 65535,
            "autofluorescence": 150.0,
            "texture": 0.1,
        },
    },
}


def kind_options(kind: str, seed: int = 0) -> dict:
    """Return the arguments of :func:`make_truth` and :func:`render` for one of :data:`KINDS`.

    Returns
    -------
    dict
        ``shape, nuclei, t, scale, truth, render`` (``nuclei`` drawn from the kind's
        range with ``seed``).
    """
    if kind not in KINDS:
        raise InputError(f"Unknown kind={kind!r}; choose one of {', '.join(KINDS)}.")
    spec = KINDS[kind]
    lo, hi = spec["nuclei"]
    nuclei = int(np.random.default_rng([seed, 99]).integers(lo, hi + 1))
    return {**spec, "nuclei": nuclei, "truth": dict(spec["truth"]), "render": dict(spec["render"])}


def synth_kind(
    kind: str, *, seed: int = 0, **changes: object
) -> tuple[np.ndarray, pd.DataFrame, tuple[float, float, float]]:
    """Render a stack of one of :data:`KINDS` in memory, with its truth.

    Parameters
    ----------
    kind : str
        A name in :data:`KINDS`.
    seed : int
        Seed of the count, positions, sizes, brightness and noise.
    **changes
        ``shape``, ``nuclei`` or ``t`` instead of the kind's (e.g. a smaller stack).

    Returns
    -------
    (ndarray, pandas.DataFrame, tuple)
        The ``(t, z, y, x)`` uint16 stack, the truth table and the voxel size.
    """
    spec = {**kind_options(kind, seed), **changes}
    shape = tuple(int(v) for v in spec["shape"])
    scale = tuple(float(v) for v in spec["scale"])
    truth = make_truth(shape, int(spec["nuclei"]), scale=scale, t=int(spec["t"]), seed=seed,
                       **spec["truth"])  # fmt: skip
    image = render(
        truth, (0, 0, 0, 0), (int(spec["t"]), *shape), scale=scale, noise_seed=seed,
        **spec["render"],
    )  # fmt: skip
    return image, truth, scale


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
    radius_px: tuple[float, float] | None = None,
    mitotic: float = 0.0,
    mitotic_brightness: float = 3.0,
    motion_um: float | None = None,
    divisions: float = 0.0,
    elongation: tuple[float, float] | None = None,
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
    radius_px : (float, float), optional
        The radius range in pixels of the y/x plane instead of ``radius_um``
        (converted with the mean y/x voxel size).
    mitotic : float
        Fraction of small bright nuclei (condensed, mitotic ones): radius
        within 15 % of the smallest radius, ``mitotic_brightness`` times as bright.
    mitotic_brightness : float
        How much brighter the mitotic nuclei are.
    motion_um : float, optional
        With ``t > 1``: the nuclei of the first time point move instead of being drawn
        anew at every time point, each with its own velocity of about ``motion_um`` µm
        per time point in a random direction (paths cross; a move that would make two
        nuclei overlap turns the nucleus instead), and the table gains the true
        lineage (:func:`moving_truth`).
    divisions : float
        With ``motion_um``: the chance per nucleus and time point that it divides into
        two daughters of half its volume.
    elongation : (float, float), optional
        Oval nuclei: each an ellipsoid of the sphere's volume whose axes in the y/x plane
        are ``r_um * sqrt(a)`` and ``r_um / sqrt(a)`` (``a``, its aspect ratio, drawn
        uniformly from this range; the long axis at a random angle) and ``r_um`` in z.
        Nuclei are placed, kept inside and spaced by the circle around each (its long
        semi-axis); a touching one is placed where the two surfaces meet on the line of
        their centres (they may overlap a little beside it).  The table gains
        ``aspect`` and ``angle`` (radians from the x axis towards y).

    Returns
    -------
    pandas.DataFrame
        Columns ``nucleus, t, z, y, x`` (px), ``z_um, y_um, x_um``, ``r_um``,
        ``brightness``; with ``motion_um`` also ``track_id`` and ``parent_track_id``
        (0: none); with ``elongation`` also ``aspect`` and ``angle``.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"shape={shape} must be three positive sizes (z, y, x).")
    if nuclei < 0 or t < 1:
        raise InputError(f"nuclei={nuclei} must be >= 0 and t={t} at least 1.")
    if radius_px is not None:
        pixel = (float(scale[1]) + float(scale[2])) / 2
        radius_um = (float(radius_px[0]) * pixel, float(radius_px[1]) * pixel)
    if not 0 <= mitotic <= 1:
        raise InputError(f"mitotic={mitotic} must be a fraction from 0 to 1.")
    if elongation is not None and not 1.0 <= float(elongation[0]) <= float(elongation[1]):
        raise InputError(f"elongation={elongation} must be two aspect ratios 1 <= low <= high.")
    if elongation is not None and motion_um is not None and t > 1:
        raise InputError("elongation and motion_um cannot be combined; give one of them.")
    if divisions and (motion_um is None or t < 2):
        raise InputError(
            f"divisions={divisions} needs moving nuclei over several time points: give "
            "motion_um (--motion UM) and t > 1 (--t N) too, or leave divisions out."
        )
    if motion_um is not None and t > 1:
        first = make_truth(
            shape, nuclei, scale=scale, t=1, radius_um=radius_um, brightness=brightness,
            seed=seed, min_separation=min_separation, brightness_spread=brightness_spread,
            touching=touching, stacked=stacked, saturated=saturated, mitotic=mitotic,
            mitotic_brightness=mitotic_brightness,
        )  # fmt: skip
        return moving_truth(
            first, shape, t=t, scale=scale, motion_um=motion_um, divisions=divisions,
            seed=seed, min_separation=min_separation,
        )  # fmt: skip
    rng = np.random.default_rng(seed)
    # The ovals' draws come from a generator of their own: without them the table is the same.
    oval_rng = np.random.default_rng([seed, 17]) if elongation is not None else None
    extent = np.array(shape) * np.asarray(scale, float)
    rows = []
    hard = touching > 0 or stacked > 0
    for ti in range(t):
        placed: list[tuple[np.ndarray, float, float]] = []  # centre, outer radius, brightness
        ovals: list[tuple[float, float, float]] = []  # radius, aspect, angle
        for _ in range(nuclei * 200):
            if len(placed) == nuclei:
                break
            r = rng.uniform(*radius_um)
            bright = 1.0
            if mitotic > 0 and rng.uniform() < mitotic:
                r, bright = radius_um[0] * rng.uniform(1.0, 1.15), mitotic_brightness
            aspect, angle = 1.0, 0.0
            if oval_rng is not None:
                aspect, angle = oval_rng.uniform(*elongation), oval_rng.uniform(0.0, np.pi)
            outer = r * np.sqrt(aspect)
            lo = np.array([0.0, outer, outer])
            hi = np.maximum(extent - np.array([scale[0], outer, outer]), lo)
            partner = -1
            if hard and placed and rng.uniform() < touching + stacked:
                contact = None
                if oval_rng is not None:  # the two ovals' surfaces along the line of centres
                    contact = functools.partial(_ovals_contact, (r, aspect, angle), ovals)
                c, partner = _touching_centre(
                    rng, placed, outer, stacked / (touching + stacked), planar=shape[0] == 1,
                    contact=contact,
                )  # fmt: skip
                if np.any(c < lo) or np.any(c > hi):
                    continue
            else:
                c = rng.uniform(lo, hi)
            if all(
                np.linalg.norm(c - pc) >= min_separation * (outer + pr)
                for k, (pc, pr, _) in enumerate(placed)
                if k != partner
            ):
                placed.append((c, outer, bright))
                ovals.append((r, aspect, angle))
        for (c, _, bright), (r, aspect, angle) in zip(placed, ovals):
            value = _brightness(rng, brightness, brightness_spread, saturated)
            value = value * bright if value < 5.0 * MAX_VALUE else value
            rows.append((ti, *c, r, value, aspect, angle))
    names = ["t", "z_um", "y_um", "x_um", "r_um", "brightness", "aspect", "angle"]
    df = pd.DataFrame(rows, columns=names)
    for name, step in zip(SPATIAL, scale):
        df[name] = df[f"{name}_um"] / step
    df.insert(0, "nucleus", np.arange(1, len(df) + 1))
    columns = ["nucleus", "t", "z", "y", "x", "z_um", "y_um", "x_um", "r_um", "brightness"]
    return df[columns + (["aspect", "angle"] if elongation is not None else [])]


#: Daughters of a division are placed this many times the sum of their radii apart.
DAUGHTER_SPACING = 1.1
#: A daughter grows back to its mother's radius by this factor per time point.
GROWTH = 1.02


def moving_truth(
    first: pd.DataFrame,
    shape: Sequence[int],
    *,
    t: int,
    scale: Sequence[float],
    motion_um: float = 1.0,
    divisions: float = 0.0,
    seed: int = 0,
    min_separation: float = 1.1,
) -> pd.DataFrame:
    """Move the nuclei of one time point through ``t`` time points, with divisions.

    Each nucleus keeps a velocity of ``motion_um`` µm per time point (times a
    factor from 0.75 to 1.25, in a random direction, in the plane for 2D
    images) that turns a little every time point; a nucleus that would leave
    the stack or come closer to another than ``min_separation`` times the sum
    of their radii turns at random instead (and stays where it is when no
    direction is free).  With chance ``divisions`` per time point a nucleus
    divides: two daughters of half its volume, ``DAUGHTER_SPACING`` times the sum of
    their radii apart along a random axis, moving apart; each grows back to the
    mother's radius.

    Returns
    -------
    pandas.DataFrame
        The truth table (:func:`make_truth`'s columns) with ``track_id`` and
        ``parent_track_id``: a track is a nucleus between divisions, the parent of
        a daughter's track the mother's.
    """
    rng = np.random.default_rng([seed, 16])
    sc = np.asarray(scale, float)
    extent = np.array([int(v) for v in shape]) * sc
    planar = int(shape[0]) == 1
    n = len(first)
    pos = first[["z_um", "y_um", "x_um"]].to_numpy(float).copy()
    r = first["r_um"].to_numpy(float).copy()
    full = r.copy()
    bright = first["brightness"].to_numpy(float).copy()
    track = np.arange(1, n + 1, dtype=np.int64)
    parent = np.zeros(n, np.int64)
    vel = _directions(rng, n, planar) * motion_um * rng.uniform(0.75, 1.25, (n, 1))
    next_track = n + 1
    frames = []
    for ti in range(t):
        frames.append(
            pd.DataFrame(
                {
                    "t": ti, "z_um": pos[:, 0], "y_um": pos[:, 1], "x_um": pos[:, 2], "r_um": r,
                    "brightness": bright, "track_id": track, "parent_track_id": parent,
                }
            )
        )  # fmt: skip
        if ti == t - 1:
            break
        divide = rng.uniform(size=len(pos)) < divisions
        for k in np.flatnonzero(divide):
            rd = r[k] / 2 ** (1 / 3)
            axis = _directions(rng, 1, planar)[0]
            half = DAUGHTER_SPACING * rd
            a, b = pos[k] + axis * half, pos[k] - axis * half
            if not (_inside(a, rd, extent, sc, planar) and _inside(b, rd, extent, sc, planar)):
                continue
            others = np.delete(np.arange(len(pos)), k)
            if not (
                _free(a, rd, pos[others], r[others], min_separation)
                and _free(b, rd, pos[others], r[others], min_separation)
            ):
                continue
            speed = np.linalg.norm(vel[k])
            pos = np.vstack([pos, b])
            pos[k] = a
            vel = np.vstack([vel, -axis * speed])
            vel[k] = axis * speed
            r = np.append(r, rd)
            r[k] = rd
            full = np.append(full, full[k])
            bright = np.append(bright, bright[k])
            parent = np.append(parent, track[k])
            parent[k] = track[k]
            track = np.append(track, next_track + 1)
            track[k] = next_track
            next_track += 2
        for k in rng.permutation(len(pos)):
            turn = _directions(rng, 1, planar)[0] * 0.2 * np.linalg.norm(vel[k])
            step = vel[k] + turn
            step *= np.linalg.norm(vel[k]) / max(np.linalg.norm(step), 1e-12)
            others = np.delete(np.arange(len(pos)), k)
            for _ in range(8):
                target = pos[k] + step
                if _inside(target, r[k], extent, sc, planar) and _free(
                    target, r[k], pos[others], r[others], min_separation
                ):
                    pos[k], vel[k] = target, step
                    break
                step = _directions(rng, 1, planar)[0] * np.linalg.norm(vel[k])
        r = np.minimum(r * GROWTH, full)
    df = pd.concat(frames, ignore_index=True)
    for name, step in zip(SPATIAL, sc):
        df[name] = df[f"{name}_um"] / step
    df.insert(0, "nucleus", np.arange(1, len(df) + 1))
    columns = ["nucleus", "t", "z", "y", "x", "z_um", "y_um", "x_um", "r_um", "brightness"]
    return df[[*columns, "track_id", "parent_track_id"]]


def _directions(rng: np.random.Generator, n: int, planar: bool) -> np.ndarray:
    """``n`` random unit vectors (in the y/x plane for 2D images)."""
    v = rng.normal(size=(n, 3))
    if planar:
        v[:, 0] = 0.0
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def _inside(c: np.ndarray, r: float, extent: np.ndarray, scale: np.ndarray, planar: bool) -> bool:
    """Whether a nucleus of radius ``r`` at ``c`` lies whole in y/x and its centre in z."""
    lo = np.array([0.0, r, r])
    hi = extent - np.array([scale[0], r, r])
    if planar:
        return bool(np.all(c[1:] >= lo[1:]) and np.all(c[1:] <= hi[1:]))
    return bool(np.all(c >= lo) and np.all(c <= hi))


def _free(c: np.ndarray, r: float, others: np.ndarray, radii: np.ndarray, sep: float) -> bool:
    """Whether a nucleus at ``c`` keeps ``sep`` times the sum of radii from the others."""
    if len(others) == 0:
        return True
    return bool(np.all(np.linalg.norm(others - c, axis=1) >= sep * (radii + r)))


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
    placed: list[tuple[np.ndarray, float, float]],
    r: float,
    p_stacked: float,
    *,
    planar: bool = False,
    contact: Callable[[np.ndarray, int], float] | None = None,
) -> tuple[np.ndarray, int]:
    """Return a centre touching a random earlier nucleus, and that nucleus's index.

    With ``planar`` the direction lies in the y/x plane (2D images).  The centres are
    0.95-1.0 times ``contact(direction, k)`` apart, by default the sum of the radii.
    """
    k = int(rng.integers(len(placed)))
    pc, pr, _ = placed[k]
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
    apart = r + pr if contact is None else contact(direction, k)
    return pc + direction * rng.uniform(0.95, 1.0) * apart, k


def _ovals_contact(new: tuple, ovals: list, direction: np.ndarray, k: int) -> float:
    """Centre distance at which oval ``new`` along ``direction`` meets oval ``ovals[k]``."""
    return _oval_reach(direction, *new) + _oval_reach(-direction, *ovals[k])


def _oval_reach(direction: np.ndarray, r: float, aspect: float, angle: float) -> float:
    """Distance from an oval nucleus's centre to its surface along the unit ``direction``.

    The ellipsoid of :func:`make_truth`'s ``elongation``: semi-axes ``r * sqrt(aspect)``
    along ``angle`` in the y/x plane, ``r / sqrt(aspect)`` across it, ``r`` in z.
    """
    dz, dy, dx = (float(v) for v in direction)
    along = dx * np.cos(angle) + dy * np.sin(angle)
    across = dy * np.cos(angle) - dx * np.sin(angle)
    return r / float(np.sqrt(dz**2 + along**2 / aspect + across**2 * aspect))


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
    autofluorescence: float = 0.0,
    illumination: float = 0.0,
    texture: float = 0.0,
    blur_um: Sequence[float] | None = None,
) -> np.ndarray:
    """Render one ``(t, z, y, x)`` block of the synthetic stack as uint16.

    Intensities are Poisson (shot noise) plus Gaussian read noise of
    ``read_noise`` grey levels plus a camera ``offset`` (noise-free, e.g.
    33000 grey levels), clipped to ``max_value`` (default the 12-bit range;
    at most 65535).  The smooth fields below depend on ``noise_seed`` and the
    physical position only.

    Parameters
    ----------
    autofluorescence : float
        Peak of a smooth background (features of 40-150 µm) added to
        ``background``, in grey levels.
    illumination : float
        Uneven illumination: the light (nuclei, background and
        autofluorescence) is multiplied by a smooth field from
        ``1 - illumination`` to 1.
    texture : float
        Nuclear texture: each nucleus's intensity varies by this fraction
        about its brightness (features of 1.5-3 µm).
    blur_um : (z, y, x) floats, optional
        The microscope's blur: the light is spread by a Gaussian of these standard
        deviations in µm before the noise (a widefield or confocal point spread function
        is some 2-4 times longer in z than across).  The block is rendered with the
        margin the Gaussian reaches, so blocks of one stack join without seams.
    """
    if blur_um is not None and (len(blur_um) != 3 or any(not float(b) >= 0 for b in blur_um)):
        raise InputError(
            f"blur_um={tuple(blur_um)!r} is not three standard deviations in µm, each 0 or "
            "more (z, y, x); pass e.g. (1.2, 0.2, 0.2)."
        )
    light = _light(
        truth, block_start, block_shape, scale=scale, background=background,
        noise_seed=noise_seed, edge_um=edge_um, autofluorescence=autofluorescence,
        illumination=illumination, texture=texture, blur_um=blur_um,
    )  # fmt: skip
    seed = [noise_seed, *(int(v) for v in block_start)]
    rng = np.random.default_rng(seed)
    noisy = rng.poisson(light) + rng.normal(0.0, read_noise, light.shape) + offset
    return np.clip(np.rint(noisy), 0, min(max_value, 65535)).astype(np.uint16)


def _light(
    truth: pd.DataFrame,
    block_start: Sequence[int],
    block_shape: Sequence[int],
    *,
    scale: Sequence[float],
    background: float,
    noise_seed: int,
    edge_um: float,
    autofluorescence: float,
    illumination: float,
    texture: float,
    blur_um: Sequence[float] | None,
) -> np.ndarray:
    """Return the mean light of one block of :func:`render` (float64), blurred, before noise."""
    if blur_um is not None and any(float(b) > 0 for b in blur_um):
        sigma = [float(b) / float(s) for b, s in zip(blur_um, scale)]
        reach = [int(np.ceil(4 * s)) for s in sigma]
        grown = _light(
            truth, (block_start[0], *(int(v) - r for v, r in zip(block_start[1:], reach))),
            (block_shape[0], *(int(n) + 2 * r for n, r in zip(block_shape[1:], reach))),
            scale=scale, background=background, noise_seed=noise_seed, edge_um=edge_um,
            autofluorescence=autofluorescence, illumination=illumination, texture=texture,
            blur_um=None,
        )  # fmt: skip
        blurred = ndi.gaussian_filter(grown, (0, *sigma), mode="nearest", truncate=4.0)
        core = tuple(slice(r, r + int(n)) for r, n in zip(reach, block_shape[1:]))
        return blurred[(slice(None), *core)]
    t0, z0, y0, x0 = (int(v) for v in block_start)
    nt, nz, ny, nx = (int(v) for v in block_shape)
    sz, sy, sx = (float(v) for v in scale)
    out = np.full((nt, nz, ny, nx), background, np.float64)
    zz = (z0 + np.arange(nz)) * sz
    yy = (y0 + np.arange(ny)) * sy
    xx = (x0 + np.arange(nx)) * sx
    fields = autofluorescence > 0 or illumination > 0 or texture > 0
    if fields:  # nuclei apart from the background, so that the fields can act on each
        out = np.zeros((nt, nz, ny, nx), np.float64)
    for row in truth.itertuples(index=False):
        ti = int(row.t) - t0
        if not 0 <= ti < nt:
            continue
        aspect = float(getattr(row, "aspect", 1.0))
        reach = row.r_um * np.sqrt(aspect) + 4 * edge_um
        zs = np.flatnonzero(np.abs(zz - row.z_um) <= row.r_um + 4 * edge_um)
        ys = np.flatnonzero(np.abs(yy - row.y_um) <= reach)
        xs = np.flatnonzero(np.abs(xx - row.x_um) <= reach)
        if not (zs.size and ys.size and xs.size):
            continue
        dy, dx = yy[None, ys, None] - row.y_um, xx[None, None, xs] - row.x_um
        if aspect != 1.0:  # along and across the long axis, scaled to the sphere's radius
            cos, sin = np.cos(row.angle), np.sin(row.angle)
            dx, dy = (
                (dx * cos + dy * sin) / np.sqrt(aspect),
                (dy * cos - dx * sin) * np.sqrt(aspect),
            )
        dist = np.sqrt((zz[zs, None, None] - row.z_um) ** 2 + dy**2 + dx**2)
        profile = row.brightness / (1 + np.exp((dist - row.r_um) / edge_um))
        region = (ti, slice(zs[0], zs[-1] + 1), slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
        out[region] += profile
    if fields:
        out = _fields(
            out, (zz, yy, xx), noise_seed, background, autofluorescence, illumination, texture
        )
    return out


def visible_centres(
    truth: pd.DataFrame, shape: Sequence[int], *, scale: Sequence[float], edge_um: float = 0.6
) -> pd.DataFrame:
    """Return ``truth`` with each centre moved to the centroid of what the stack shows of it.

    A nucleus cut by the stack's faces (its top or bottom in z; :func:`make_truth` keeps
    nuclei whole in y and x) shows only part of itself, and no method can see the true
    centre of the part it does not show.  The centroid of each nucleus as :func:`render`
    draws it (its profile, before noise, fields and clipping), summed over the voxels of
    the ``(z, y, x)`` stack ``shape``, is the centre a segmentation can find; for a
    nucleus inside the stack it is its centre, to within the sampling.
    """
    out = truth.copy()
    sz, sy, sx = (float(v) for v in scale)
    axes = [np.arange(int(n)) * s for n, s in zip(shape, (sz, sy, sx))]
    centres = out[["z_um", "y_um", "x_um"]].to_numpy(float).copy()
    for i, (centre, r) in enumerate(zip(centres, out["r_um"].to_numpy(float))):
        reach = r + 4 * edge_um
        sel = [a[np.abs(a - c) <= reach] for a, c in zip(axes, centre)]
        if not all(v.size for v in sel):
            continue
        zz, yy, xx = np.meshgrid(*sel, indexing="ij")
        dist = np.sqrt((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2)
        weight = 1 / (1 + np.exp((dist - r) / edge_um))
        total = weight.sum()
        if total > 0:
            centres[i] = [(v * weight).sum() / total for v in (zz, yy, xx)]
    out[["z_um", "y_um", "x_um"]] = centres
    if {"z", "y", "x"} <= set(out.columns):
        out[["z", "y", "x"]] = centres / np.array([sz, sy, sx])
    return out


def _smooth_field(
    axes: tuple[np.ndarray, np.ndarray, np.ndarray],
    seed: Sequence[int],
    wavelengths: tuple[float, float],
    waves: int,
) -> np.ndarray:
    """Return a smooth field in [0, 1] of the position: a sum of ``waves`` cosines."""
    rng = np.random.default_rng(list(seed))
    zz, yy, xx = axes
    total = np.zeros((zz.size, yy.size, xx.size))
    for _ in range(waves):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        k = 2 * np.pi / rng.uniform(*wavelengths) * direction
        phase = rng.uniform(0, 2 * np.pi)
        total += np.cos(
            k[0] * zz[:, None, None] + k[1] * yy[None, :, None] + k[2] * xx[None, None, :] + phase
        )
    return (total / waves + 1.0) / 2.0


def _fields(
    signal: np.ndarray,
    axes: tuple[np.ndarray, np.ndarray, np.ndarray],
    seed: int,
    background: float,
    autofluorescence: float,
    illumination: float,
    texture: float,
) -> np.ndarray:
    """Mean intensities of a block: textured nuclei over autofluorescence, unevenly lit."""
    if texture > 0:
        signal = signal * (
            1.0 + texture * (2.0 * _smooth_field(axes, (seed, 3), (1.5, 3.0), 6) - 1)
        )
    light = background + signal
    if autofluorescence > 0:
        light = light + autofluorescence * _smooth_field(axes, (seed, 1), (40.0, 150.0), 3)
    if illumination > 0:
        light = light * (1.0 - illumination * _smooth_field(axes, (seed, 2), (150.0, 400.0), 2))
    return np.maximum(light, 0.0)


def _chunks(shape: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    _, nz, ny, nx = shape
    plane = ny * nx * 2
    if plane <= 64 * 2**20:
        return (1, max(1, min(nz, (8 * 2**20) // plane)), ny, nx)
    return (1, 1, min(ny, 4096), min(nx, 4096))


#: :func:`synth`'s shape, count, time points and voxel size, without a kind.
_SYNTH_DEFAULTS = {"shape": (24, 256, 256), "nuclei": 40, "t": 1, "scale": (1.5, 0.71, 0.71)}


def synth(
    path: str | os.PathLike,
    *,
    shape: Sequence[int] | None = None,
    nuclei: int | None = None,
    t: int | None = None,
    scale: Sequence[float] | None = None,
    seed: int = 0,
    overwrite: bool = False,
    difficulty: str = "easy",
    kind: str | None = None,
    render_options: dict | None = None,
    frame_interval_s: float | None = None,
    **truth_options: object,
) -> tuple[Path, Path]:
    """Write a synthetic OME-Zarr stack and its truth table.

    Parameters
    ----------
    path : path-like
        The OME-Zarr image to create (e.g. ``sample.ome.zarr``).
    shape : (Z, Y, X), optional
        Size of each time point (default: 24 x 256 x 256, or the kind's).
    nuclei : int, optional
        Nuclei per time point (default: 40, or the kind's).
    t : int, optional
        Time points; with ``t > 1`` the image has dims ``(t, z, y, x)`` (default: 1, or
        the kind's).
    scale : (z, y, x), optional
        Voxel size in µm (default: 1.5 x 0.71 x 0.71, or the kind's).
    seed : int
        Seed of positions, sizes, brightness and noise.
    overwrite : bool
        Replace an existing ``path`` (only a synthetic stack that bigseg wrote, and
        its truth table).
    difficulty : {"easy", "hard"}
        A named set of options from :data:`DIFFICULTY`; ``"easy"`` changes nothing.
    kind : str, optional
        One of :data:`KINDS`: its options replace ``difficulty``'s, and its shape, count,
        time points and voxel size stand for those not given.
    render_options : dict, optional
        Passed to :func:`render` (over the difficulty's or kind's): ``offset``,
        ``autofluorescence``, ``illumination``, ``texture``, ``max_value`` ...
    frame_interval_s : float, optional
        Seconds between time points, written as the scale of the image's ``t`` axis.
    **truth_options
        Passed to :func:`make_truth` (over the difficulty's or kind's options);
        ``motion_um`` and ``divisions`` make moving, dividing nuclei whose true lineage
        is written too, in the Cell Tracking Challenge's format
        (``<name>_ctc/TRA/man_track.txt`` and a marker mask per time point,
        :func:`write_ctc_truth`).

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
    base = {**DIFFICULTY[difficulty], **_SYNTH_DEFAULTS}
    if kind is not None:
        base = kind_options(kind, seed)
    shape, nuclei, t, scale = (
        base[name] if given is None else given
        for name, given in (("shape", shape), ("nuclei", nuclei), ("t", t), ("scale", scale))
    )
    options = {**base["truth"], **truth_options}
    render_options = {**base["render"], **(render_options or {})}
    truth = make_truth(shape, nuclei, scale=scale, t=t, seed=seed, **options)
    # One voxel first: a bad rendering option fails here, before anything is written.
    render(truth.iloc[:0], (0, 0, 0, 0), (1, 1, 1, 1), scale=scale, **render_options)
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
        frame_interval_s=frame_interval_s if t > 1 else None,
    )
    truth.to_csv(truth_path, index=False)
    if "track_id" in truth:
        write_ctc_truth(truth, shape, scale, ctc_truth_path_for(path), t=t)
    return path, truth_path


#: The CTC truth's markers are spheres of this fraction of each nucleus's radius.
MARKER_FRACTION = 0.5


def ctc_truth_path_for(image_path: str | os.PathLike) -> Path:
    """Where :func:`synth` writes the CTC truth of ``image_path``: ``<name>_ctc``."""
    truth = truth_path_for(image_path)
    return truth.with_name(truth.name[: -len("_truth.csv")] + "_ctc")


def write_ctc_truth(
    truth: pd.DataFrame,
    shape: Sequence[int],
    scale: Sequence[float],
    directory: str | os.PathLike,
    *,
    t: int,
) -> Path:
    """Write a lineage truth table in the Cell Tracking Challenge's format.

    ``directory/TRA/man_track.txt`` (``L B E P`` per track) and one marker mask per
    time point, ``TRA/man_track000.tif`` ...: each nucleus a sphere of
    :data:`MARKER_FRACTION` of its radius, labelled by its track.  Only a folder of
    bigseg's synthetic truth is replaced.

    Returns
    -------
    Path
        ``directory``.
    """
    from .io.ctc import ctc_dtype, frame_name, write_lineage, write_mask

    directory = Path(directory)
    tra = directory / "TRA"
    if directory.exists():
        names = set(os.listdir(directory))
        inner = set(os.listdir(tra)) if tra.is_dir() else set()
        ours = names <= {"TRA"} and all(
            n == "man_track.txt" or (n.startswith("man_track") and n.endswith(".tif"))
            for n in inner
        )
        if not ours:
            raise InputError(
                f"{str(directory)!r} exists and is not a CTC truth that bigseg wrote; it was "
                "left untouched. Choose another name."
            )
        for n in inner:
            (tra / n).unlink()
    tra.mkdir(parents=True, exist_ok=True)
    g = truth.groupby("track_id", sort=True)
    rows = pd.DataFrame(
        {
            "L": g["t"].min().index,
            "B": g["t"].min(),
            "E": g["t"].max(),
            "P": g["parent_track_id"].first(),
        }
    )
    dtype = ctc_dtype(int(rows["L"].max()) if len(rows) else 0)
    write_lineage(rows.astype(np.int64), tra / "man_track.txt")
    sc = np.asarray(scale, float)
    shape = tuple(int(v) for v in shape)
    axes = [np.arange(n) * step for n, step in zip(shape, sc)]
    for ti in range(int(t)):
        mask = np.zeros(shape, np.int64)
        for row in truth[truth["t"] == ti].itertuples(index=False):
            reach = MARKER_FRACTION * row.r_um
            c = (row.z_um, row.y_um, row.x_um)
            idx = [np.flatnonzero(np.abs(a - v) <= reach) for a, v in zip(axes, c)]
            if shape[0] == 1:
                idx[0] = np.array([0])
            if not all(i.size for i in idx):
                continue
            dz = 0.0 if shape[0] == 1 else (axes[0][idx[0]] - c[0])[:, None, None]
            d2 = dz**2 + (axes[1][idx[1]] - c[1])[None, :, None] ** 2
            d2 = d2 + (axes[2][idx[2]] - c[2])[None, None, :] ** 2
            region = np.ix_(*idx)
            inside = d2 <= reach**2
            mask[region] = np.where(inside, row.track_id, mask[region])
        write_mask(mask, tra / frame_name("man_track", ti, t), dtype)
    return directory


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
