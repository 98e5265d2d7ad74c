"""Link per-plane detections across z into 3D nuclei.

The seed recipe grouped detections by single-linkage clustering on (x, y):
it chains neighbouring nuclei together, merges nuclei stacked in z, and needs
O(n²) memory.  Here detections are linked only between nearby planes of the
same time point, only when their centres are close relative to their radii,
and each detection keeps at most one partner per neighbouring plane (mutual
nearest).  Candidate pairs come from one KD-tree query, and the connected
components of the pair graph are the nuclei: O(n log n) in time, O(n) in
memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from . import methods
from ._errors import InputError
from .params import Params
from .tables import NUCLEUS_COLUMNS, PEAK, empty_table

__all__ = [
    "NUCLEUS_COLUMNS",
    "combine_bounds",
    "components",
    "detection_bounds",
    "drop_small",
    "link",
    "link_components",
    "nuclei_table",
    "number_components",
    "split_at_drift",
    "split_at_necks",
]


def link_pairs(
    detections: pd.DataFrame,
    *,
    link_distance: float = 0.5,
    max_gap: int = 1,
) -> np.ndarray:
    """Candidate links between detections of nearby planes (row positions, shape (k, 2)).

    Two detections of the same time point, ``1 <= dz <= max_gap + 1`` planes
    apart, are linked when the distance between their centres in (y, x) is
    below ``link_distance`` times the larger radius.  Among the candidates
    between two given planes each detection keeps only its nearest partner,
    and only mutual choices survive.
    """
    n = len(detections)
    if n < 2:
        return np.empty((0, 2), np.int64)
    t = detections["t"].to_numpy(float)
    z = detections["z"].to_numpy(float)
    yx = detections[["y_um", "x_um"]].to_numpy(float)
    radius = detections["radius_um"].to_numpy(float)
    reach = link_distance * float(radius.max())
    span = max_gap + 1
    # Chebyshev distance on (t, z, y, x): planes at most `span` apart, never across t.
    coords = np.column_stack([t * (4 * span + 4) * reach, z * reach / span, yx])
    pairs = cKDTree(coords).query_pairs(reach * (1 + 1e-9), p=np.inf, output_type="ndarray")
    if pairs.size == 0:
        return np.empty((0, 2), np.int64)
    i, j = pairs[:, 0], pairs[:, 1]
    dz = np.abs(z[i] - z[j])
    dist = np.hypot(*(yx[i] - yx[j]).T)
    ok = (dz >= 1) & (dist < link_distance * np.maximum(radius[i], radius[j]))
    i, j, dz, dist = i[ok], j[ok], dz[ok], dist[ok]
    # Orient every pair from lower to upper plane, then keep mutual nearest per plane pair.
    lower = np.where(z[i] < z[j], i, j)
    upper = np.where(z[i] < z[j], j, i)
    cand = pd.DataFrame({"a": lower, "b": upper, "dz": dz, "dist": dist})
    cand = cand.sort_values(["dist", "a", "b"], kind="stable")
    cand = cand.drop_duplicates(["a", "dz"]).drop_duplicates(["b", "dz"])
    return cand[["a", "b"]].to_numpy(np.int64)


def split_at_necks(
    component: np.ndarray,
    z: np.ndarray,
    weight: np.ndarray,
    *,
    neck_ratio: float,
    min_planes: int = 2,
) -> np.ndarray:
    """Split chains of nuclei stacked in z where their profile along z has a neck.

    For each component, the profile is the summed ``weight`` (e.g. integrated
    intensity) of its detections per plane, with 0 in skipped planes.  A
    plane is a neck when its value is below ``neck_ratio`` times the smaller
    of the largest values above and below it, with at least ``min_planes``
    planes on each side.  Each component is cut at its deepest neck (the
    planes above it become a new component), and again until no neck is
    left.  One nucleus alone has a profile that rises and falls once and is
    never cut.  Vectorised over components: no Python loop over nuclei.

    Parameters
    ----------
    component : (n,) int array
        Component id of each detection.
    z : (n,) array
        Plane index of each detection.
    weight : (n,) array
        Per-detection weight whose profile is examined.
    neck_ratio : float
        Depth a neck must reach, as a fraction of the smaller side's peak.
    min_planes : int
        Planes each side of a neck must keep.

    Returns
    -------
    (n,) int64 array
        Component ids after splitting (ids of uncut parts are unchanged).
    """
    comp = np.asarray(component, np.int64).copy()
    if comp.size == 0:
        return comp
    z = np.asarray(z, float)
    weight = np.asarray(weight, float)
    for _ in range(64):  # each round cuts every component at most once
        frame = pd.DataFrame({"c": comp, "z": z, "w": weight})
        prof = frame.groupby(["c", "z"], sort=True)["w"].sum().reset_index()
        ext = prof.groupby("c", sort=True)["z"].agg(["min", "max"])
        sizes = (ext["max"] - ext["min"] + 1).to_numpy(np.int64)
        if sizes.max() < 2 * min_planes + 1:
            break
        starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
        full = pd.DataFrame(
            {
                "c": np.repeat(ext.index.to_numpy(), sizes),
                "z": np.repeat(ext["min"].to_numpy(), sizes) + (np.arange(sizes.sum()) - starts),
            }
        )
        full = full.merge(prof, how="left", on=["c", "z"]).fillna({"w": 0.0})
        by = full.groupby("c", sort=False)
        below = by["w"].cummax().groupby(full["c"]).shift(1)
        rev = full.iloc[::-1]
        above = rev.groupby("c", sort=False)["w"].cummax().groupby(rev["c"]).shift(1).iloc[::-1]
        pos = by.cumcount().to_numpy()
        count = by["z"].transform("size").to_numpy()
        side = np.minimum(below.to_numpy(), above.to_numpy())
        with np.errstate(invalid="ignore", divide="ignore"):
            depth = full["w"].to_numpy() / side
        ok = (depth < neck_ratio) & (pos >= min_planes) & (count - 1 - pos >= min_planes)
        if not ok.any():
            break
        cuts = (
            full.loc[ok, ["c", "z"]]
            .assign(depth=depth[ok])
            .sort_values(["depth", "c", "z"], kind="stable")
            .drop_duplicates("c")
        )
        new_ids = comp.max() + 1 + np.arange(len(cuts))
        cut_z = pd.Series(cuts["z"].to_numpy(), index=cuts["c"].to_numpy())
        cut_new = pd.Series(new_ids, index=cuts["c"].to_numpy())
        at = pd.Series(comp).map(cut_z).to_numpy()
        upper = np.isfinite(at) & (z > at)
        comp[upper] = pd.Series(comp[upper]).map(cut_new).to_numpy()
    return comp


def split_at_drift(
    component: np.ndarray,
    z: np.ndarray,
    y_um: np.ndarray,
    x_um: np.ndarray,
    area_um2: np.ndarray,
    *,
    ratio: float,
    min_planes: int = 2,
    min_area: float = 0.0,
) -> np.ndarray:
    """Split chains of nuclei stacked in z whose cross-sections' centres move sideways.

    One nucleus's cross-sections are centred on one axis; two nuclei that touch along z
    and are offset sideways are linked into one chain whose centres move from one to the
    other, even where no neck of area or intensity tells them apart.  For each component
    and each plane ``k``, the planes up to ``k`` and those above are its two sides; each
    side's centre is the area-weighted mean of its detections' centres (``y_um``,
    ``x_um``) and its size the radius of a disc of its largest plane's area.  The
    component is cut above the plane where the distance between the sides' centres is
    largest relative to the smaller size, when that is above ``ratio``, each side keeps
    ``min_planes`` planes and sums ``min_area`` (µm², the summed area of the smallest
    nucleus kept: both parts must be nuclei), and the centres are a step rather than a
    ramp (their squared distances from the two sides' centres are under
    :data:`RAMP_RATIO` times those from the straight line in z that fits them best: a
    flat nucleus tilted out of the planes is not cut), and again until no such plane is
    left.  Vectorised over components, as :func:`split_at_necks`.

    Returns
    -------
    (n,) int64 array
        Component ids after splitting (ids of uncut parts are unchanged).
    """
    comp = np.asarray(component, np.int64).copy()
    if comp.size == 0:
        return comp
    z = np.asarray(z, float)
    area = np.asarray(area_um2, float)
    for _ in range(64):  # each round cuts every component at most once
        frame = pd.DataFrame(
            {"c": comp, "z": z, "a": area, "ay": area * np.asarray(y_um, float),
             "ax": area * np.asarray(x_um, float)}
        )  # fmt: skip
        prof = frame.groupby(["c", "z"], sort=True).sum().reset_index()
        by = prof.groupby("c", sort=False)
        pos = by.cumcount().to_numpy()
        count = by["z"].transform("size").to_numpy()
        if count.max() < 2 * min_planes:
            break
        low_a, low_y, low_x = (by[k].cumsum().to_numpy() for k in ("a", "ay", "ax"))
        all_a, all_y, all_x = (by[k].transform("sum").to_numpy() for k in ("a", "ay", "ax"))
        up_a = all_a - low_a
        widest_low = by["a"].cummax().to_numpy()
        rev = prof.iloc[::-1]
        widest_up = (
            rev.groupby("c", sort=False)["a"].cummax().groupby(rev["c"]).shift(1).iloc[::-1]
        ).to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            apart = np.hypot(
                low_y / low_a - (all_y - low_y) / up_a, low_x / low_a - (all_x - low_x) / up_a
            )
            drift = apart / np.sqrt(np.minimum(widest_low, widest_up) / np.pi)
        ok = (
            (pos + 1 >= min_planes)
            & (count - 1 - pos >= min_planes)
            & (low_a >= min_area)
            & (up_a >= min_area)
            & (drift > ratio)
        )
        # A step, not a ramp: a flat nucleus tilted out of the planes has centres that
        # move far, but along a straight line; two nuclei's stay on two axes.
        ok &= _step_residual(prof, low_a, low_y, low_x, up_a, all_y, all_x) < (
            RAMP_RATIO * _line_residual(prof)
        )
        if not ok.any():
            break
        cuts = (
            prof.loc[ok, ["c", "z"]]
            .assign(drift=-drift[ok])
            .sort_values(["drift", "c", "z"], kind="stable")
            .drop_duplicates("c")
        )
        new_ids = comp.max() + 1 + np.arange(len(cuts))
        cut_z = pd.Series(cuts["z"].to_numpy(), index=cuts["c"].to_numpy())
        cut_new = pd.Series(new_ids, index=cuts["c"].to_numpy())
        at = pd.Series(comp).map(cut_z).to_numpy()
        upper = np.isfinite(at) & (z > at)
        comp[upper] = pd.Series(comp[upper]).map(cut_new).to_numpy()
    return comp


def _step_residual(prof, low_a, low_y, low_x, up_a, all_y, all_x) -> np.ndarray:
    """Per row of ``prof``, the chain's misfit to a step cut above that row's plane.

    The area-weighted squared distances of the chain's centres from its two sides'
    centres (µm² x µm²).
    """
    a = prof["a"].to_numpy()
    yy = np.where(a > 0, prof["ay"].to_numpy() ** 2 / a, 0.0)
    xx = np.where(a > 0, prof["ax"].to_numpy() ** 2 / a, 0.0)
    prof = prof.assign(q=yy + xx)
    low_q = prof.groupby("c", sort=False)["q"].cumsum().to_numpy()
    up_q = prof.groupby("c", sort=False)["q"].transform("sum").to_numpy() - low_q
    up_y, up_x = all_y - low_y, all_x - low_x
    with np.errstate(invalid="ignore", divide="ignore"):
        low = low_q - (low_y**2 + low_x**2) / low_a
        up = up_q - (up_y**2 + up_x**2) / up_a
    return low + up


def _line_residual(prof) -> np.ndarray:
    """Per row of ``prof``, its chain's misfit to a ramp.

    The area-weighted squared distances of the chain's centres from the straight line
    (in z) that fits them best (weighted least squares).
    """
    a, z = prof["a"].to_numpy(), prof["z"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = np.where(a > 0, prof["ay"].to_numpy() / a, 0.0)
        cx = np.where(a > 0, prof["ax"].to_numpy() / a, 0.0)
    terms = pd.DataFrame(
        {"c": prof["c"].to_numpy(), "a": a, "az": a * z, "azz": a * z * z,
         "ay": a * cy, "ax": a * cx, "azy": a * z * cy, "azx": a * z * cx,
         "q": a * (cy * cy + cx * cx)}
    )  # fmt: skip
    sums = terms.groupby("c", sort=False).transform("sum")
    sa, sz, szz = sums["a"].to_numpy(), sums["az"].to_numpy(), sums["azz"].to_numpy()
    out = sums["q"].to_numpy().copy()
    det = sa * szz - sz * sz
    with np.errstate(invalid="ignore", divide="ignore"):
        for s1, szc in (("ay", "azy"), ("ax", "azx")):
            sc, sxc = sums[s1].to_numpy(), sums[szc].to_numpy()
            slope = np.where(det > 0, (sa * sxc - sz * sc) / det, 0.0)
            icpt = (sc - slope * sz) / sa
            out -= icpt * sc + slope * sxc
    return out


def _in_memory(table: object, function: str, name: str) -> None:
    """Refuse, in one sentence, a table that is not a pandas DataFrame (a lazy one)."""
    if not isinstance(table, pd.DataFrame):
        kind = f"{type(table).__module__.split('.')[0]}.{type(table).__name__}"
        hint = " (call .compute() on it first)" if hasattr(table, "compute") else ""
        raise InputError(
            f"{function}() takes {name} as a pandas DataFrame, not a {kind}{hint}: "
            "bigseg.measure returns a lazy dask DataFrame, one row per region per plane."
        )


def link(
    detections: pd.DataFrame,
    *,
    params: Params | None = None,
    scale: Sequence[float] | None = None,
    planar: bool = False,
    link_distance: float = 0.5,
    max_gap: int = 1,
    neck_ratio: float | None = None,
) -> pd.DataFrame:
    """Give every detection the id of the 3D nucleus it belongs to.

    With ``params``, the method's linking (``params.preset``) as :func:`bigseg.run` does
    it: its link distance and gap, neck splitting (in a stack also where the centres of
    a chain's cross-sections move sideways: :func:`split_at_drift`), and fragment
    dropping (:func:`drop_small`, which needs ``scale``); ``link_distance``, ``max_gap``
    and ``neck_ratio`` are then taken from ``params``.

    Parameters
    ----------
    detections : pandas.DataFrame
        Per-plane detections (:func:`bigseg.measure`), any number of time points.
    params : Params, optional
        Link as the method of ``params`` does in :func:`bigseg.run`.
    scale : sequence of 3 floats, optional
        Voxel size ``(z, y, x)`` in µm; needed with ``params`` of a method that drops
        fragments (the ``default`` method).
    planar : bool
        The detections come from one plane per time point (a 2D image or time-lapse).
    link_distance : float
        Centres closer than this fraction of the larger radius can link.
    max_gap : int
        Empty planes a nucleus may skip.
    neck_ratio : float, optional
        When given, split linked chains of nuclei stacked in z where their
        integrated-intensity profile has a neck (:func:`split_at_necks`), and where
        their area profile has one of :data:`AREA_NECK_RATIO`.

    Returns
    -------
    pandas.DataFrame
        A copy of ``detections`` (without fragments, when the method drops them) with an
        int64 ``nucleus`` column (1..N, numbered by time, then by first plane, then by
        position).
    """
    _in_memory(detections, "link", "detections")
    if params is not None:
        method = methods.get(params.preset)
        if method.drop_fragments and scale is None:
            raise InputError(
                f"link(params=...) with the {params.preset!r} method drops fragments smaller "
                "than min_radius and needs the voxel size: pass scale=(z, y, x) in µm."
            )
        options = method.link_options(params)
        out = detections.reset_index(drop=True)
        component = components(
            out, link_distance=options["link_distance"], max_gap=options["max_gap"]
        )
        return link_components(out, component, params=params, scale=scale, planar=planar)  # type: ignore[arg-type]
    out = detections.reset_index(drop=True).copy()
    component = components(out, link_distance=link_distance, max_gap=max_gap)
    out["nucleus"] = _nuclei(out, component, neck_ratio)
    return out


def components(
    detections: pd.DataFrame, *, link_distance: float = 0.5, max_gap: int = 1
) -> np.ndarray:
    """Label the connected components of the links of :func:`link_pairs` (ids 0..k-1).

    A link depends on the detections of its two planes only, so the links among any
    set of whole planes are those that linking the whole time point would find.
    """
    n = len(detections)
    if n == 0:
        return np.empty(0, np.int64)
    pairs = link_pairs(detections, link_distance=link_distance, max_gap=max_gap)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def link_components(
    detections: pd.DataFrame,
    component: np.ndarray,
    *,
    params: Params,
    scale: Sequence[float],
    planar: bool = False,
    bounds: pd.DataFrame | None = None,
    candidates: bool = False,
) -> pd.DataFrame:
    """Finish :func:`link` with ``params`` from connected components found already.

    ``component`` gives each row of ``detections`` its component (:func:`components`,
    or components joined across the seams of z-slabs); the method's neck splitting (and,
    in a stack, :func:`split_at_drift`), numbering and fragment dropping follow, as in
    :func:`link`. ``bounds`` is passed to
    :func:`drop_small` (how far each time point's detections reach, when ``detections``
    hold only some of them), and so is ``candidates``.
    """
    method = methods.get(params.preset)
    out = detections.reset_index(drop=True).copy()
    neck_ratio = method.link_options(params)["neck_ratio"]
    # Both parts of a chain cut where its centres move sideways must be nuclei that
    # drop_small keeps: each sums the area of the smallest nucleus over its planes.
    smallest = 4 / 3 * np.pi * (FRAGMENT_FRACTION * float(params.min_radius)) ** 3
    drift_area = None if planar or neck_ratio is None else smallest / float(scale[0])
    out["nucleus"] = _nuclei(out, np.asarray(component, np.int64), neck_ratio, drift_area)
    if method.drop_fragments:
        out = drop_small(
            out, scale=scale, min_radius=params.min_radius, planar=planar, bounds=bounds,
            candidates=candidates,
        )  # fmt: skip
    return out


def _nuclei(
    out: pd.DataFrame,
    component: np.ndarray,
    neck_ratio: float | None,
    drift_area: float | None = None,
) -> np.ndarray:
    """Nucleus ids 1..N of the rows of ``out``: components split at necks, numbered.

    With ``drift_area`` (µm²), also where their centres move sideways
    (:func:`split_at_drift`, each part summing that area at least).
    """
    if len(out) == 0:
        return np.empty(0, np.int64)
    if neck_ratio is not None:
        component = split_at_necks(
            component,
            out["z"].to_numpy(float),
            out["intensity_sum"].to_numpy(float),
            neck_ratio=neck_ratio,
        )
        # A neck in the cross-sections' area: nuclei of even brightness stacked in z, whose
        # contact the blur fills with light but not with area.
        component = split_at_necks(
            component, out["z"].to_numpy(float), out["area_px"].to_numpy(float),
            neck_ratio=AREA_NECK_RATIO,
        )  # fmt: skip
    if neck_ratio is not None and drift_area is not None:
        component = split_at_drift(
            component, out["z"].to_numpy(float), out["y_um"].to_numpy(float),
            out["x_um"].to_numpy(float), out["area_um2"].to_numpy(float),
            ratio=DRIFT_RATIO, min_area=drift_area,
        )  # fmt: skip
    return number_components(out, component)


def number_components(out: pd.DataFrame, component: np.ndarray) -> np.ndarray:
    """Return ids 1..N for component labels, ordered by (t, z, y, x) of each one's first row.

    ``component`` (one label per row of ``out``, 0..k-1) may leave labels unused.  This
    is the order :func:`link` numbers nuclei in.
    """
    n = len(out)
    order = np.lexsort(
        (out["x"].to_numpy(), out["y"].to_numpy(), out["z"].to_numpy(), out["t"].to_numpy())
    )
    first_seen = np.full(component.max() + 1, -1, np.int64)
    ranks = np.empty(n, np.int64)
    ranks[order] = np.arange(n)
    # The smallest rank in each component decides its position.
    best = np.full(component.max() + 1, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(best, component, ranks)
    first_seen[np.argsort(best)] = np.arange(1, best.size + 1)
    return first_seen[component]


#: :func:`link` with a ``neck_ratio`` also splits chains where the area of the cross-sections
#: falls below this fraction of the smaller side's largest area (one nucleus's area rises
#: and falls once; two touching in z narrow where they meet, however blurred).
AREA_NECK_RATIO = 0.85
#: :func:`link` with ``params`` of a method that splits necks, in a stack, also splits chains
#: where the centres of the cross-sections below and above a plane are this many times the
#: radius of the smaller side's widest cross-section apart (:func:`split_at_drift`): two
#: nuclei touching along z and offset sideways.  One nucleus's sections, tilted or not,
#: stay within 0.72 of it on the real stacks and 0.71 on the synthetic matrix; pairs
#: merged into one are 0.78 and more.
DRIFT_RATIO = 0.8
#: ... unless a straight line in z fits the chain's centres well: the cut is made only where
#: the centres' squared distances from the two sides' centres are below this many times
#: those from the best line (a ramp leaves the line nearly nothing).  Flat nuclei (20 x 14 x
#: 5 µm) tilted 10-60° out of the planes give 300-1600 and are not cut; merged pairs give up
#: to about 3-10 (the grid of bench/grid.py is the same as without this rule at 10, one
#: pair more is merged at 3).
RAMP_RATIO = 10.0
#: :func:`drop_small` compares nuclei with a sphere (disc) of this fraction of ``min_radius``:
#: the half-maximum contour of a nucleus 1.1 times ``min_radius`` encloses about a sphere of
#: ``min_radius``, and a blurred, thresholded nucleus is smaller than the nucleus.
FRAGMENT_FRACTION = 0.95
#: ... or, in 2D images, with a disc of this fraction of ``min_radius`` (wider than a point
#: of light looks after the default smoothing: a disc of 1.4 µm at half maximum).
PLANAR_FRACTION = 0.75
#: ... and with planes spanning this fraction of ``min_radius`` in z.
EXTENT_FRACTION = 1.2
#: A nucleus in the first or last plane of its time point's detections may be cut by the
#: stack's face: it is compared with this fraction of the sphere.
FACE_FRACTION = 0.5
#: ... and planes spanning this fraction of the z extent asked, unless it reaches a side of
#: the stack in y or x too (:func:`_at_a_side`): a nucleus centred at the stack's top or
#: bottom shows half its extent.
FACE_EXTENT = 0.5
#: A 3D piece :func:`drop_small` would drop is kept when its signal peak (the default
#: method's signal above the background, :data:`bigseg.tables.PEAK`) is at least this
#: fraction of the median peak of its time point's kept nuclei, its volume at least a
#: sphere of :data:`BRIGHT_FRACTION` of ``min_radius`` and it is inside (not in the first or
#: last plane of its time point's detections): small nuclei cut to two or three planes.
#: Measured (docs/accuracy.md, seventh round): 3D cells of the matrix under F1 0.95 18 -> 9;
#: the brightest real inside piece of that size that is not a nucleus peaks at 0.299 of
#: the median (BBBC050 16-cell), 1.34 times below.
BRIGHT_PEAK = 0.4
#: ... its volume at least a sphere of this fraction of ``min_radius``: the largest real
#: piece over 0.4 of the median that is not a nucleus is 0.647 ``min_radius`` (StarDist),
#: 1.56 times smaller in volume.
BRIGHT_FRACTION = 0.75


def drop_small(
    linked: pd.DataFrame,
    *,
    scale: Sequence[float],
    min_radius: float,
    planar: bool = False,
    bounds: pd.DataFrame | None = None,
    candidates: bool = False,
) -> pd.DataFrame:
    """Drop the detections of nuclei smaller than a sphere of ``min_radius`` µm, renumbered.

    A nucleus's volume is its summed area times the z step (as in
    :func:`nuclei_table`); fragments seen in one or two planes only, smaller
    than the smallest nucleus, go; a nucleus in the first or last plane of its
    time point's detections (which may be cut by the stack's face) needs
    :data:`FACE_FRACTION` of that volume, and :data:`FACE_EXTENT` of the z extent
    unless it reaches a side in y or x too.  In 2D images (``planar``) a nucleus's
    area is compared with a disc of ``min_radius``; the z size plays no part.

    In a stack whose detections carry the method's signal peak (:data:`bigseg.tables.
    PEAK`), a piece that would be dropped is kept when it is inside the stack, the size of
    a sphere of :data:`BRIGHT_FRACTION` of ``min_radius`` and as bright as
    :data:`BRIGHT_PEAK` times the median of its time point's kept nuclei
    (:func:`bright_pieces`): a small nucleus cut to two or three planes.

    Parameters
    ----------
    linked : pandas.DataFrame
        Output of :func:`link`.
    scale : sequence of 3 floats
        Voxel size ``(z, y, x)`` in µm.
    min_radius : float
        Smallest nucleus radius, µm.
    planar : bool
        The detections come from one plane per time point (a 2D image or
        time-lapse).
    bounds : pandas.DataFrame, optional
        Each time point's :func:`detection_bounds`, when ``linked`` holds only some of
        its detections (a z-slab of a time point); by default those of ``linked``.
    candidates : bool
        With ``bounds`` of a part of its time points' detections, the median of the kept
        nuclei is not known here: the pieces :func:`bright_pieces` would weigh are kept
        too, marked in a :data:`CANDIDATE` column, for :func:`take_bright` to decide.

    Returns
    -------
    pandas.DataFrame
        The detections of the nuclei kept, with ``nucleus`` renumbered 1..N.
    """
    if len(linked) == 0:
        return linked.copy()
    groups = linked.groupby("nucleus")
    size = groups["area_um2"].transform("sum").to_numpy()
    if planar:
        keep = size >= np.pi * (PLANAR_FRACTION * float(min_radius)) ** 2
    else:
        # The first and last planes of a time point's detections stand for the stack's
        # faces: a nucleus there may be cut by them, and shows part of its volume.
        first, last = (
            groups["z"].transform("min").to_numpy(),
            groups["z"].transform("max").to_numpy(),
        )
        if bounds is None:
            bounds = detection_bounds(linked, scale)
        per_row = bounds.reindex(linked["t"].to_numpy())
        low, high = per_row["low"].to_numpy(float), per_row["high"].to_numpy(float)
        sphere = 4 / 3 * np.pi * (FRAGMENT_FRACTION * float(min_radius)) ** 3
        cut = (first == low) | (last == high)
        keep = size * float(scale[0]) >= np.where(cut, FACE_FRACTION, 1.0) * sphere
        # A nucleus spans at least min_radius in z (half its smallest diameter), or as
        # many planes as its time point's detections do when the stack is thinner.
        planes = last - first
        depth = high - low + 1
        extent = EXTENT_FRACTION * float(min_radius) / float(scale[0])
        # ... or half that at the first or last plane, when no side of the stack in y or x
        # may cut it too (a piece in a corner shows a few planes of a nucleus elsewhere).
        half = cut & ~_at_a_side(linked, scale, per_row)
        needed = np.ceil(np.where(half, FACE_EXTENT, 1.0) * extent - 1e-9)
        keep &= (planes + 1) >= np.minimum(needed, depth)
        if PEAK in linked.columns and not candidates:
            keep |= bright_pieces(linked, keep, size * float(scale[0]), cut, min_radius)
        elif PEAK in linked.columns:
            taken = ~keep & ~cut & (size * float(scale[0]) >= _bright_sphere(min_radius))
            out = linked[keep | taken].reset_index(drop=True)
            out[CANDIDATE] = taken[keep | taken]
            return _renumbered(out)
    return _renumbered(linked[keep].reset_index(drop=True))


def _renumbered(out: pd.DataFrame) -> pd.DataFrame:
    if len(out):
        _, component = np.unique(out["nucleus"].to_numpy(), return_inverse=True)
        out["nucleus"] = number_components(out, component.astype(np.int64))
    return out


#: Column that :func:`drop_small` with ``candidates=True`` adds: the row's nucleus was
#: dropped but may be kept by :func:`take_bright` once its time point's median is known.
CANDIDATE = "_candidate"


def _bright_sphere(min_radius: float) -> float:
    return 4 / 3 * np.pi * (BRIGHT_FRACTION * float(min_radius)) ** 3


def _nucleus_peaks(linked: pd.DataFrame) -> np.ndarray:
    """Each row's nucleus's signal peak: the largest :data:`PEAK` of its rows."""
    return linked.groupby("nucleus")[PEAK].transform("max").to_numpy(float)


def kept_peaks(linked: pd.DataFrame) -> pd.DataFrame:
    """One row per nucleus kept (not a candidate) of ``linked``: its ``t`` and ``peak``."""
    rows = linked
    if CANDIDATE in rows.columns:
        rows = rows[~rows[CANDIDATE].to_numpy(bool)]
    if PEAK not in rows.columns or len(rows) == 0:
        return pd.DataFrame({"t": pd.Series(dtype="float64"), "peak": pd.Series(dtype="float64")})
    by = rows.groupby("nucleus", sort=True)
    return pd.DataFrame(
        {"t": by["t"].first().to_numpy(np.float64), "peak": by[PEAK].max().to_numpy(np.float64)}
    )


def peak_medians(peaks: pd.DataFrame) -> pd.Series:
    """Return the median peak of each time point's kept nuclei (:func:`kept_peaks`), by ``t``."""
    return peaks.groupby("t", sort=True)["peak"].median().astype(np.float64)


def bright_pieces(
    linked: pd.DataFrame,
    keep: np.ndarray,
    volume: np.ndarray,
    cut: np.ndarray,
    min_radius: float,
) -> np.ndarray:
    """Rows of the pieces that :func:`drop_small` drops but keeps as small, bright nuclei.

    A dropped piece (``~keep``) inside the stack (``~cut``: not in the first or last plane
    of its time point's detections) with a volume (µm³, per row) of a sphere of
    :data:`BRIGHT_FRACTION` of ``min_radius`` at least, and a signal peak of
    :data:`BRIGHT_PEAK` times the median peak of its time point's kept nuclei at least.
    """
    medians = peak_medians(kept_peaks(linked[keep]))
    return ~keep & ~cut & (volume >= _bright_sphere(min_radius)) & _bright(linked, medians)


def _bright(linked: pd.DataFrame, medians: pd.Series) -> np.ndarray:
    """Rows whose nucleus peaks at :data:`BRIGHT_PEAK` of its time point's ``medians`` at least."""
    median = medians.reindex(linked["t"].to_numpy(float)).to_numpy(float)
    with np.errstate(invalid="ignore"):
        return _nucleus_peaks(linked) >= BRIGHT_PEAK * median  # NaN (no kept nucleus): False


def take_bright(linked: pd.DataFrame, medians: pd.Series) -> pd.DataFrame:
    """Keep the candidates of :func:`drop_small` (``candidates=True``) bright enough.

    ``medians``: the median peak of each time point's kept nuclei (:func:`peak_medians`
    of all its parts' :func:`kept_peaks`).  Returns the rows kept, without the
    :data:`CANDIDATE` column; ids are left as they are.
    """
    if CANDIDATE not in linked.columns:
        return linked
    candidate = linked[CANDIDATE].to_numpy(bool)
    bright = _bright(linked, medians)
    return linked[~candidate | bright].drop(columns=CANDIDATE).reset_index(drop=True)


def detection_bounds(detections: pd.DataFrame, scale: Sequence[float]) -> pd.DataFrame:
    """Return how far each time point's detections reach: what :func:`drop_small` compares with.

    One row per time point (indexed by ``t``): the first and last planes (``low``,
    ``high``) and the furthest reach in y and x in pixels (``far_y``, ``far_x``: a
    detection's centre plus the radius of its area).  The bounds of a time point split
    into parts are the minimum of their ``low`` and the maximum of the rest
    (:func:`combine_bounds`).
    """
    radius_um = np.sqrt(detections["area_um2"].to_numpy(float) / np.pi)
    table = pd.DataFrame(
        {
            "t": detections["t"].to_numpy(),
            "low": detections["z"].to_numpy(float),
            "high": detections["z"].to_numpy(float),
            "far_y": detections["y"].to_numpy(float) + radius_um / float(scale[1]),
            "far_x": detections["x"].to_numpy(float) + radius_um / float(scale[2]),
        }
    )
    return combine_bounds(table)


def combine_bounds(table: pd.DataFrame) -> pd.DataFrame:
    """Combine rows of :func:`detection_bounds` (of parts of time points) per time point."""
    spec = {"low": "min", "high": "max", "far_y": "max", "far_x": "max"}
    return table.groupby("t", sort=True).agg(spec).astype(np.float64)


def _at_a_side(linked: pd.DataFrame, scale: Sequence[float], bounds: pd.DataFrame) -> np.ndarray:
    """Whether each row's nucleus reaches as far in y or x as its time point's detections do.

    A detection's reach is its centre plus or minus the radius of its area (in pixels of
    each axis, ``scale`` the voxel size ``(z, y, x)``).  The stack's sides are not known
    here: the lowest side is 0, the highest the furthest any detection of the time point
    reaches (``bounds``, one row per row of ``linked``: :func:`detection_bounds`), so that
    a nucleus at a side is always found (and one that merely reaches furthest is taken as
    at a side too).
    """
    radius_um = np.sqrt(linked["area_um2"].to_numpy(float) / np.pi)
    at = np.zeros(len(linked), bool)
    for axis, size in (("y", scale[1]), ("x", scale[2])):
        centre, radius = linked[axis].to_numpy(float), radius_um / float(size)
        far = bounds[f"far_{axis}"].to_numpy(float)
        at |= (centre - radius < SIDE_PX) | (centre + radius > far - SIDE_PX)
    return pd.Series(at).groupby(linked["nucleus"].to_numpy()).transform("any").to_numpy()


#: :func:`_at_a_side`: a detection within this many pixels of a side reaches it.
SIDE_PX = 1.0


def nuclei_table(
    linked: pd.DataFrame, *, scale: Sequence[float], planar: bool = False
) -> pd.DataFrame:
    """Summarise linked detections into one row per nucleus.

    Positions are intensity-weighted means of the detections' centres; the
    volume is the summed area times the z step; the radius is that of a sphere
    of the same volume.  In 2D images (``planar``) a nucleus has no volume
    (``volume_um3`` is NaN) and its radius is that of a disc of its area, so
    nothing depends on the z size.

    Parameters
    ----------
    linked : pandas.DataFrame
        Output of :func:`link`.
    scale : sequence of 3 floats
        Voxel size ``(z, y, x)`` in µm.
    planar : bool
        The detections come from one plane per time point (a 2D image or
        time-lapse).

    Returns
    -------
    pandas.DataFrame
        :data:`NUCLEUS_COLUMNS`, one row per nucleus, sorted by id.
    """
    _in_memory(linked, "nuclei_table", "linked")
    if len(linked) == 0:
        return empty_table(NUCLEUS_COLUMNS)
    d = linked
    w = d["intensity_sum"].to_numpy(float)
    # Zero-intensity detections still count, with equal weight.
    w = np.where(w > 0, w, 1e-12)
    cols = ["z", "y", "x", "z_um", "y_um", "x_um"]
    weighted = d[cols].mul(w, axis=0)
    weighted["w"] = w
    weighted["nucleus"] = d["nucleus"].to_numpy()
    sums = weighted.groupby("nucleus", sort=True).sum()
    out = sums[cols].div(sums["w"], axis=0)
    g = d.groupby("nucleus", sort=True)
    out.insert(0, "t", g["t"].first())
    volume = (
        g["area_px"].sum().to_numpy(float) * float(scale[0]) * float(scale[1]) * float(scale[2])
    )
    if planar:
        area = g["area_px"].sum().to_numpy(float) * float(scale[1]) * float(scale[2])
        out["volume_um3"] = np.nan
        out["radius_um"] = np.sqrt(area / np.pi)
    else:
        out["volume_um3"] = volume
        out["radius_um"] = np.cbrt(3 * volume / (4 * np.pi))
    out["intensity_sum"] = g["intensity_sum"].sum()
    out["intensity_mean"] = out["intensity_sum"] / g["area_px"].sum()
    out["n_planes"] = g["z"].nunique()
    out["z_first"] = g["z"].min()
    out["z_last"] = g["z"].max()
    out = out.reset_index()
    return out[list(NUCLEUS_COLUMNS)].astype(NUCLEUS_COLUMNS)
