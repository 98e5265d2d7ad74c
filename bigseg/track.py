"""Link 3D nuclei across time into tracks: pandas in, pandas out, per pair of time points.

Tracking is a global assignment between consecutive time points, solved in two steps
that each need only two or three time points, so that every step runs on a worker with
memory and time bounded by the nuclei of those time points:

1. **Frame links** (:func:`frame_links`): every nucleus of time point ``t`` may link to
   one of ``t + 1``.  Candidates come from a KD-tree within ``search_radius`` µm plus the
   nucleus's own radius (a daughter lies about her radius from where her mother was); the
   cost of a link is ``(d / search_radius)² + volume_weight · log2(v' / v)² +
   intensity_weight · log2(I' / I)²`` (displacement, change of volume, change of mean
   intensity); a nucleus left unlinked costs 1 on each side (a track ends, a track
   starts), so a link is made when it costs less than 2.  The assignment is solved
   exactly with SciPy's sparse LAP solver
   (:func:`scipy.sparse.csgraph.min_weight_full_bipartite_matching`) on the candidate
   pairs and one "no link" alternative per nucleus -- the standard augmented matrix of
   Jaqaman et al. (2008), kept sparse: a frame of tissue is often one connected
   component of candidates, which a dense solver per component would not fit.
2. **Gaps and divisions** (:func:`gaps_and_divisions`), per target time point ``s``:
   a nucleus of ``s`` that no frame link reached (a *start*) may continue a track that
   ended at ``s - 2`` (a gap over one missing time point, within twice the search radius,
   cost ``(d / search_radius)² / 2 + ...`` plus ``gap_cost``, saving an end and a start:
   made below 2), or be the second daughter of a nucleus of ``s - 1`` whose frame link
   reached ``s``, within the search radius plus the mother's radius (a division: cost of
   the displacement of the daughters' midpoint from the mother, of the daughters' summed
   volume against the mother's, of unequal daughters, plus ``division_cost``; saving a
   start: made below 1).  Both kinds compete for the same starts in one sparse assignment.
3. **Late daughters** (:func:`late_daughters`): a start of ``s`` left over may be the
   second daughter of a nucleus of ``s - 2`` whose track continued into ``s - 1``
   (segmentation often misses a daughter, or merges her with her sister, right after a
   division); cost of a division plus ``gap_cost``, made below 1.  :func:`links_into`
   gives every link into one time point from the five time points around it.

A division ends the mother's track; both daughters start tracks whose
``parent_track_id`` is the mother's.  Track ids (:func:`track_ids`) follow from the
links: a nucleus with a continuing link into it takes its source's track, any other
starts a new track.  :func:`track` does all of this in memory for one table;
:mod:`bigseg.pipeline.tracking` does it per partition of time on the workers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, min_weight_full_bipartite_matching
from scipy.spatial import cKDTree

from .params import TrackParams

__all__ = [
    "LINK_COLUMNS",
    "TRACK_COLUMNS",
    "TrackParams",
    "ctc_tracks",
    "frame_links",
    "gaps_and_divisions",
    "late_daughters",
    "links_into",
    "track",
    "track_ids",
    "tracks_table",
]

POSITION = ["z_um", "y_um", "x_um"]

#: Columns of a links table: source and target nucleus ids, their time points, the cost,
#: the kind (``"frame"``, ``"gap"`` or ``"division"``) and whether the target continues
#: the source's track (False for both daughters of a division).
LINK_COLUMNS: dict[str, str] = {
    "source": "int64",
    "target": "int64",
    "t_source": "int64",
    "t_target": "int64",
    "cost": "float64",
    "kind": "object",
    "continues": "bool",
}

#: Columns of ``tracks.parquet``, one row per track.
TRACK_COLUMNS: dict[str, str] = {
    "track_id": "int64",
    "parent_track_id": "int64",
    "t_first": "int64",
    "t_last": "int64",
    "length": "int64",
    "path_um": "float64",
    "mean_speed_um_per_frame": "float64",
    "mean_speed_um_per_min": "float64",
}

# The cost of leaving a nucleus unlinked on one side (a track ends, or one starts).
_ALONE = 1.0
# Sparse solvers drop explicit zeros: every edge weighs at least this.
_EPS = 1e-9


def empty_links() -> pd.DataFrame:
    """Return an empty links table (:data:`LINK_COLUMNS`)."""
    if not _EMPTY:  # built once: a typed empty frame costs ~10 ms in pandas 3
        _EMPTY.append(pd.DataFrame({c: pd.Series(dtype=d) for c, d in LINK_COLUMNS.items()}))
    return _EMPTY[0].copy()


_EMPTY: list[pd.DataFrame] = []


def _size(frame: pd.DataFrame) -> np.ndarray:
    """Volume of each nucleus (its radius cubed where there is none: 2D images)."""
    volume = frame["volume_um3"].to_numpy(float)
    radius = frame["radius_um"].to_numpy(float)
    size = np.where(np.isfinite(volume), volume, radius**2)
    return np.maximum(size, 1e-12)


def _log2_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.log2(np.maximum(b, 1e-12) / np.maximum(a, 1e-12))
    return np.where(np.isfinite(r), r, 0.0)


def _solve(
    rows: np.ndarray,
    cols: np.ndarray,
    cost: np.ndarray,
    row_alone: np.ndarray,
    col_alone: np.ndarray,
) -> np.ndarray:
    """Solve a sparse assignment with a "stay alone" alternative for every row and column.

    Returns the indices (into the candidate arrays) of the pairs chosen.
    """
    n, m, k = row_alone.size, col_alone.size, cost.size
    if k == 0:
        return np.empty(0, np.int64)
    # Rows: n real + m "start" dummies; columns: m real + n "end" dummies.
    r = np.concatenate([rows, np.arange(n), n + np.arange(m), n + cols])
    c = np.concatenate([cols, m + np.arange(n), np.arange(m), m + rows])
    w = np.concatenate([cost, row_alone, col_alone, np.zeros(k)]) + _EPS
    graph = coo_matrix((w, (r, c)), shape=(n + m, m + n)).tocsr()
    _, col_of_row = min_weight_full_bipartite_matching(graph)
    chosen_col = col_of_row[rows]
    return np.flatnonzero(chosen_col == cols)


def _reach(sources: pd.DataFrame, search_radius: float) -> np.ndarray:
    """How far the candidates of each source nucleus may lie, µm.

    The search radius (how far a nucleus moves) plus the nucleus's own radius: a
    daughter lies about her own radius to one side of where her mother was, besides
    what she moved, so the daughters of a large nucleus lie beyond the search radius
    even when nothing moved.  The cost of a link still counts the whole distance.
    """
    radius = np.nan_to_num(sources["radius_um"].to_numpy(float), nan=0.0)
    return search_radius + np.maximum(radius, 0.0)


def _candidates(
    a: np.ndarray, b: np.ndarray, radius: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) with ``|a[i] - b[j]| <= radius`` (one per row of ``a``, or one for all)."""
    if len(a) == 0 or len(b) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    hits = cKDTree(b).query_ball_point(a, r=radius)
    i = np.repeat(np.arange(len(a)), [len(h) for h in hits]).astype(np.int64)
    j = np.fromiter((x for h in hits for x in h), np.int64, count=i.size)
    return i, j


def _change_cost(
    a: pd.DataFrame, b: pd.DataFrame, i: np.ndarray, j: np.ndarray, params: TrackParams
) -> np.ndarray:
    dv = _log2_ratio(_size(a)[i], _size(b)[j])
    di = _log2_ratio(a["intensity_mean"].to_numpy(float)[i], b["intensity_mean"].to_numpy(float)[j])
    return params.volume_weight * dv**2 + params.intensity_weight * di**2


def frame_links(
    a: pd.DataFrame, b: pd.DataFrame, *, params: TrackParams | None = None
) -> pd.DataFrame:
    """Link the nuclei of one time point (``a``) to those of the next (``b``).

    Parameters
    ----------
    a, b : pandas.DataFrame
        Nuclei tables (:data:`bigseg.tables.NUCLEUS_COLUMNS`) of two time points.
    params : TrackParams, optional
        Tracking parameters (defaults when omitted).

    Returns
    -------
    pandas.DataFrame
        :data:`LINK_COLUMNS`, one row per link made (``kind`` ``"frame"``).
    """
    params = params or TrackParams()
    pa, pb = (f[POSITION].to_numpy(float) for f in (a, b))
    i, j = _candidates(pa, pb, _reach(a, params.search_radius))
    if i.size == 0:
        return empty_links()
    d = np.linalg.norm(pa[i] - pb[j], axis=1)
    cost = (d / params.search_radius) ** 2 + _change_cost(a, b, i, j, params)
    keep = cost < 2 * _ALONE
    i, j, cost = i[keep], j[keep], cost[keep]
    chosen = _solve(i, j, cost, np.full(len(a), _ALONE), np.full(len(b), _ALONE))
    return _links(a, b, i[chosen], j[chosen], cost[chosen], "frame")


def _links(
    a: pd.DataFrame, b: pd.DataFrame, i: np.ndarray, j: np.ndarray, cost: np.ndarray, kind: str
) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "source": a["nucleus"].to_numpy(np.int64)[i],
            "target": b["nucleus"].to_numpy(np.int64)[j],
            "t_source": a["t"].to_numpy().astype(np.int64)[i],
            "t_target": b["t"].to_numpy().astype(np.int64)[j],
            "cost": cost,
            "kind": kind,
            "continues": kind != "division",
        }
    )
    return out.astype(LINK_COLUMNS)


def gaps_and_divisions(
    before: pd.DataFrame,
    previous: pd.DataFrame,
    current: pd.DataFrame,
    links_before: pd.DataFrame,
    links_previous: pd.DataFrame,
    *,
    params: TrackParams | None = None,
) -> pd.DataFrame:
    """Links into one time point ``s``: its frame links, closed gaps and divisions.

    Parameters
    ----------
    before, previous, current : pandas.DataFrame
        Nuclei of time points ``s - 2``, ``s - 1`` and ``s`` (``before`` may be empty).
    links_before : pandas.DataFrame
        :func:`frame_links` from ``s - 2`` to ``s - 1``.
    links_previous : pandas.DataFrame
        :func:`frame_links` from ``s - 1`` to ``s``.
    params : TrackParams, optional
        Tracking parameters.

    Returns
    -------
    pandas.DataFrame
        :data:`LINK_COLUMNS`: every link whose target lies in ``s``; a dividing mother's
        frame link is marked as not continuing (both daughters start tracks).
    """
    params = params or TrackParams()
    links = links_previous.copy()
    starts = current[~current["nucleus"].isin(links["target"])]
    gap_src = before[~before["nucleus"].isin(links_before["source"])]
    mothers = previous[previous["nucleus"].isin(links["source"])]
    if len(starts) == 0 or not (params.gap_closing or params.divisions):
        return links.reset_index(drop=True).astype(LINK_COLUMNS)
    ps = starts[POSITION].to_numpy(float)
    rows, cols, costs, kinds = [], [], [], []
    n_gap = len(gap_src) if params.gap_closing else 0
    if n_gap:
        pg = gap_src[POSITION].to_numpy(float)
        i, j = _candidates(pg, ps, 2 * params.search_radius)
        d = np.linalg.norm(pg[i] - ps[j], axis=1)
        c = (d / params.search_radius) ** 2 / 2 + _change_cost(gap_src, starts, i, j, params)
        c = c + params.gap_cost
        ok = c < 2 * _ALONE
        rows.append(i[ok]), cols.append(j[ok]), costs.append(c[ok]), kinds.append(ok[ok] * 0)
    n_div = len(mothers) if params.divisions else 0
    if n_div:
        pm = mothers[POSITION].to_numpy(float)
        i, j = _candidates(pm, ps, _reach(mothers, params.search_radius))
        # The mother's other daughter: the target of her frame link.
        other = links.set_index("source")["target"]
        first = current.set_index("nucleus").loc[
            other.loc[mothers["nucleus"].to_numpy()].to_numpy()
        ]
        # Daughters lie on either side of where their mother was: the displacement is
        # the one of the daughters' midpoint.
        c = _division_cost(mothers.iloc[i], first.iloc[i], starts.iloc[j], params)
        ok = c < _ALONE
        rows.append(n_gap + i[ok]), cols.append(j[ok]), costs.append(c[ok])
        kinds.append(np.ones(int(ok.sum()), np.int64))
    if not rows:
        return links.reset_index(drop=True).astype(LINK_COLUMNS)
    r, c, w, kind = (np.concatenate(x) for x in (rows, cols, costs, kinds))
    alone = np.concatenate([np.full(n_gap, _ALONE), np.zeros(n_div)])
    chosen = _solve(r, c, w, alone, np.full(len(starts), _ALONE))
    r, c, w, kind = r[chosen], c[chosen], w[chosen], kind[chosen]
    gap = kind == 0
    new = [links]
    if gap.any():
        new.append(_links(gap_src, starts, r[gap], c[gap], w[gap], "gap"))
    if (~gap).any():
        div = _links(mothers, starts, r[~gap] - n_gap, c[~gap], w[~gap], "division")
        new.append(div)
        divided = links["source"].isin(div["source"])
        links.loc[divided, "continues"] = False
    return pd.concat(new, ignore_index=True).astype(LINK_COLUMNS)


def _division_cost(
    mothers: pd.DataFrame,
    first: pd.DataFrame,
    second: pd.DataFrame,
    params: TrackParams,
) -> np.ndarray:
    """Cost of each row's division: ``mothers`` into ``first`` and ``second`` (aligned rows).

    The displacement of the daughters' midpoint from the mother, the daughters' summed
    volume against hers, unequal daughters, their intensities, plus ``division_cost``.
    """
    pm, pf, ps = (f[POSITION].to_numpy(float) for f in (mothers, first, second))
    d = np.linalg.norm(pm - (pf + ps) / 2, axis=1)
    v_m, v_1, v_2 = _size(mothers), _size(first), _size(second)
    return (
        (d / params.search_radius) ** 2
        + params.volume_weight * (_log2_ratio(v_m, v_1 + v_2) ** 2 + _log2_ratio(v_1, v_2) ** 2)
        + params.intensity_weight
        * _log2_ratio(
            first["intensity_mean"].to_numpy(float), second["intensity_mean"].to_numpy(float)
        )
        ** 2
        + params.division_cost
    )


def late_daughters(
    before: pd.DataFrame,
    previous: pd.DataFrame,
    current: pd.DataFrame,
    into_previous: pd.DataFrame,
    into_current: pd.DataFrame,
    *,
    params: TrackParams | None = None,
) -> pd.DataFrame:
    """Divisions whose second daughter was missed at her first time point.

    A nucleus of ``s`` that no link of :func:`gaps_and_divisions` reached (a start)
    may be the second daughter of a nucleus of ``s - 2`` whose track continued into
    ``s - 1`` (its first daughter): segmentation often misses a daughter, or merges
    her with her sister, right after a division.  Cost: as a division's (the
    displacement of the daughters' midpoint, the first at ``s - 1`` and the second at
    ``s``, from the mother; the summed volume against hers; unequal daughters; their
    intensities) plus ``division_cost`` and ``gap_cost``; made below 1 (it saves a
    start), in one sparse assignment.  Needs ``divisions`` and ``gap_closing``.

    Parameters
    ----------
    before, previous, current : pandas.DataFrame
        Nuclei of time points ``s - 2``, ``s - 1`` and ``s``.
    into_previous, into_current : pandas.DataFrame
        The links of :func:`gaps_and_divisions` into ``s - 1`` and into ``s``.
    params : TrackParams, optional
        Tracking parameters.

    Returns
    -------
    pandas.DataFrame
        :data:`LINK_COLUMNS`: one ``"division"`` link (not continuing) from each mother
        (at ``s - 2``) to her late daughter (at ``s``).  The mother's continuing link
        into ``s - 1`` is to be marked as not continuing (:func:`links_into` does).
    """
    params = params or TrackParams()
    if not (params.divisions and params.gap_closing) or len(before) == 0:
        return empty_links()
    starts = current[~current["nucleus"].isin(into_current["target"])]
    # First daughters: nuclei of s - 1 that a continuing link from s - 2 reached, and
    # that do not divide themselves at s.
    cont = into_previous[
        into_previous["continues"].to_numpy(bool)
        & (into_previous["t_source"].to_numpy() == _t_of(before))
    ]
    dividing = into_current.loc[into_current["kind"] == "division", "source"]
    cont = cont[~cont["target"].isin(dividing)]
    if len(starts) == 0 or len(cont) == 0:
        return empty_links()
    mothers = before.set_index("nucleus").loc[cont["source"].to_numpy()].reset_index()
    first = previous.set_index("nucleus").loc[cont["target"].to_numpy()].reset_index()
    pm, ps = (f[POSITION].to_numpy(float) for f in (mothers, starts))
    # The daughters' midpoint lies near the mother: the second daughter within twice
    # the search radius of her (a gap's reach) and her radius.
    i, j = _candidates(pm, ps, _reach(mothers, 2 * params.search_radius))
    if i.size == 0:
        return empty_links()
    c = _division_cost(mothers.iloc[i], first.iloc[i], starts.iloc[j], params) + params.gap_cost
    ok = c < _ALONE
    i, j, c = i[ok], j[ok], c[ok]
    chosen = _solve(i, j, c, np.zeros(len(mothers)), np.full(len(starts), _ALONE))
    return _links(mothers, starts, i[chosen], j[chosen], c[chosen], "division")


def _t_of(frame: pd.DataFrame) -> int:
    return int(frame["t"].iloc[0]) if len(frame) else -1


def links_into(
    frames: Sequence[pd.DataFrame],
    frame_links_of: Sequence[pd.DataFrame],
    *,
    params: TrackParams | None = None,
) -> pd.DataFrame:
    """Every link into one time point ``s``, from the time points around it.

    Parameters
    ----------
    frames : sequence of 5 pandas.DataFrame
        Nuclei of ``s - 3``, ``s - 2``, ``s - 1``, ``s`` and ``s + 1`` (empty tables
        where the run has no such time point).
    frame_links_of : sequence of 4 pandas.DataFrame
        :func:`frame_links` from each of ``s - 3`` ... ``s`` to the next.
    params : TrackParams, optional
        Tracking parameters.

    Returns
    -------
    pandas.DataFrame
        :data:`LINK_COLUMNS`: :func:`gaps_and_divisions` into ``s`` and the
        :func:`late_daughters` at ``s``; a frame link into ``s`` from a mother whose late
        daughter is at ``s + 1`` is marked as not continuing.  A function of these
        time points alone, so that every partition of time computes the same links.
    """
    params = params or TrackParams()
    f3, f2, f1, f0, n1 = frames
    l3, l2, l1, l0 = frame_links_of
    into_previous = gaps_and_divisions(f3, f2, f1, l3, l2, params=params)
    into = gaps_and_divisions(f2, f1, f0, l2, l1, params=params)
    late = late_daughters(f2, f1, f0, into_previous, into, params=params)
    if len(n1):
        into_next = gaps_and_divisions(f1, f0, n1, l1, l0, params=params)
        later = late_daughters(f1, f0, n1, into, into_next, params=params)
        if len(later):
            into = into.copy()
            mothers = into["source"].isin(later["source"]).to_numpy() & into["continues"].to_numpy(
                bool
            )
            into.loc[mothers, "continues"] = False
    if len(late) == 0:
        return into
    return pd.concat([into, late], ignore_index=True).astype(LINK_COLUMNS)


def link_all(
    nuclei: pd.DataFrame,
    *,
    params: TrackParams | None = None,
    times: np.ndarray | None = None,
) -> pd.DataFrame:
    """Every link of a nuclei table in memory (frame links, gaps, divisions).

    ``times`` lists the time points of the run in order (by default every integer
    from the first to the last ``t``); "consecutive" means next in that list.  The
    same links as :mod:`bigseg.pipeline.tracking` makes per partition of time.
    """
    params = params or TrackParams()
    t = nuclei["t"].to_numpy().astype(np.int64)
    if times is None:
        times = np.arange(t.min(), t.max() + 1) if t.size else np.empty(0, np.int64)
    times = [int(v) for v in times]
    empty = nuclei.iloc[:0]
    frames = [nuclei[t == v] for v in times]
    frame = [frame_links(a, b, params=params) for a, b in zip(frames[:-1], frames[1:])]

    def nuclei_at(k: int) -> pd.DataFrame:
        return frames[k] if 0 <= k < len(frames) else empty

    def links_from(k: int) -> pd.DataFrame:
        return frame[k] if 0 <= k < len(frame) else empty_links()

    out = [empty_links()]
    for k in range(1, len(times)):
        out.append(
            links_into(
                [nuclei_at(k + d) for d in (-3, -2, -1, 0, 1)],
                [links_from(k + d) for d in (-3, -2, -1, 0)],
                params=params,
            )
        )
    return pd.concat(out, ignore_index=True).astype(LINK_COLUMNS)


def track_ids(
    nuclei: np.ndarray,
    links: pd.DataFrame,
    *,
    known: pd.DataFrame | None = None,
    first_id: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Track id and parent track id of each nucleus, from the links into them.

    A nucleus that a continuing link reaches takes its source's track (a
    union-find over the continuing links: connected components of their graph);
    any other starts a new track, numbered from ``first_id`` in the order of
    ``nuclei``; the tracks of a division's daughters have the mother's track as
    parent.

    Parameters
    ----------
    nuclei : (n,) int array
        Nucleus ids.
    links : pandas.DataFrame
        :data:`LINK_COLUMNS` whose targets are among ``nuclei``; their sources are
        among ``nuclei`` or in ``known``.
    known : pandas.DataFrame, optional
        ``nucleus, track_id, parent_track_id`` of sources that are not in ``nuclei``
        (earlier time points).
    first_id : int
        Id of the first new track.

    Returns
    -------
    (ndarray, ndarray)
        ``track_id`` and ``parent_track_id`` (0: none) per nucleus, int64.
    """
    ids = np.asarray(nuclei, np.int64)
    n = ids.size
    if known is None:
        known = pd.DataFrame({c: pd.Series(dtype="int64") for c in KNOWN_COLUMNS})
    ext = known["nucleus"].to_numpy(np.int64)
    universe = np.concatenate([ids, ext])
    size = universe.size
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = np.argsort(universe, kind="stable")
    ranked = universe[order]

    def pos(values: np.ndarray) -> np.ndarray:
        return order[np.searchsorted(ranked, values)]

    cont = links["continues"].to_numpy(bool)
    src = pos(links["source"].to_numpy(np.int64))
    dst = pos(links["target"].to_numpy(np.int64))
    graph = coo_matrix((np.ones(int(cont.sum())), (src[cont], dst[cont])), shape=(size, size))
    _, comp = connected_components(graph, directed=False)
    has_in = np.zeros(size, bool)
    has_in[dst[cont]] = True
    # Each component holds one root: a known source, or a nucleus no continuing link reached.
    root_track = np.zeros(comp.max() + 1, np.int64)
    root_parent = np.zeros(comp.max() + 1, np.int64)
    new = np.flatnonzero(~has_in[:n])
    root_track[comp[new]] = first_id + np.arange(new.size)
    if ext.size:
        root_track[comp[n:]] = known["track_id"].to_numpy(np.int64)
        root_parent[comp[n:]] = known["parent_track_id"].to_numpy(np.int64)
    div = ~cont
    if div.any():
        root_parent[comp[dst[div]]] = root_track[comp[src[div]]]
    return root_track[comp[:n]], root_parent[comp[:n]]


#: Columns that carry the tracks of earlier time points into :func:`track_ids`.
KNOWN_COLUMNS = ("nucleus", "track_id", "parent_track_id")


def tracks_table(nuclei: pd.DataFrame, *, frame_interval_s: float | None = None) -> pd.DataFrame:
    """One row per track (:data:`TRACK_COLUMNS`) of a tracked nuclei table in memory.

    The path is the summed displacement between consecutive nuclei of a track; the
    mean speed is the path over the track's duration (NaN for a track of one time
    point), in µm per time point and, when the frame interval is known, in µm/min.
    """
    if len(nuclei) == 0:
        return pd.DataFrame({c: pd.Series(dtype=d) for c, d in TRACK_COLUMNS.items()})
    d = nuclei.sort_values(["track_id", "t"], kind="stable")
    pos = d[POSITION].to_numpy(float)
    same = d["track_id"].to_numpy()[1:] == d["track_id"].to_numpy()[:-1]
    step = np.where(same, np.linalg.norm(np.diff(pos, axis=0), axis=1), 0.0)
    d = d.assign(step=np.concatenate([[0.0], step]))
    g = d.groupby("track_id", sort=True)
    out = pd.DataFrame(
        {
            "parent_track_id": g["parent_track_id"].first(),
            "t_first": g["t"].min().astype(np.int64),
            "t_last": g["t"].max().astype(np.int64),
            "length": g.size(),
            "path_um": g["step"].sum(),
        }
    ).reset_index()
    return finish_tracks(out, frame_interval_s)


def finish_tracks(rows: pd.DataFrame, frame_interval_s: float | None) -> pd.DataFrame:
    """Add the mean speeds to track rows with ``path_um``, ``t_first`` and ``t_last``."""
    duration = (rows["t_last"] - rows["t_first"]).to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        speed = np.where(duration > 0, rows["path_um"].to_numpy(float) / duration, np.nan)
    rows = rows.assign(mean_speed_um_per_frame=speed)
    minutes = np.nan if frame_interval_s is None else float(frame_interval_s) / 60.0
    rows["mean_speed_um_per_min"] = speed / minutes
    return rows[list(TRACK_COLUMNS)].astype(TRACK_COLUMNS)


def track(
    nuclei: pd.DataFrame,
    *,
    params: TrackParams | None = None,
    frame_interval_s: float | None = None,
    times: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Track the nuclei of a table in memory.

    Parameters
    ----------
    nuclei : pandas.DataFrame
        A nuclei table (:func:`bigseg.run`), any number of time points.
    params : TrackParams, optional
        Tracking parameters.
    frame_interval_s : float, optional
        Seconds between time points, for speeds in µm/min.
    times : array of int, optional
        The run's time points in order (see :func:`link_all`).

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        The nuclei with ``track_id`` and ``parent_track_id`` columns, and the tracks
        table (:data:`TRACK_COLUMNS`).
    """
    order = np.lexsort((nuclei["nucleus"].to_numpy(), nuclei["t"].to_numpy()))
    ordered = nuclei.iloc[order]
    links = link_all(ordered, params=params, times=times)
    track_id, parent = track_ids(ordered["nucleus"].to_numpy(np.int64), links)
    out = nuclei.copy()
    out["track_id"] = np.empty(len(out), np.int64)
    out["parent_track_id"] = np.empty(len(out), np.int64)
    out.iloc[order, out.columns.get_loc("track_id")] = track_id
    out.iloc[order, out.columns.get_loc("parent_track_id")] = parent
    return out, tracks_table(out, frame_interval_s=frame_interval_s)


def ctc_tracks(nuclei: pd.DataFrame, times: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    """Labels and lineage of tracked nuclei in the Cell Tracking Challenge's format.

    A CTC track is present in every frame from its first to its last, so a track
    of bigseg with a closed gap becomes one CTC track per unbroken piece, each
    piece the parent of the next; frames are positions in ``times``.

    Parameters
    ----------
    nuclei : pandas.DataFrame
        ``t``, ``track_id`` and ``parent_track_id`` of tracked nuclei.
    times : array of int
        The run's time points in order.

    Returns
    -------
    (ndarray, pandas.DataFrame)
        The CTC label of each nucleus (in the order of ``nuclei``), and the rows of
        ``res_track.txt``: ``L, B, E, P`` (label, first and last frame, parent label).
    """
    times = np.asarray(times, np.int64)
    t = nuclei["t"].to_numpy().astype(np.int64)
    frame = np.searchsorted(times, t)
    track = nuclei["track_id"].to_numpy(np.int64)
    parent = nuclei["parent_track_id"].to_numpy(np.int64)
    order = np.lexsort((frame, track))
    ft, tt = frame[order], track[order]
    new = np.ones(len(order), bool)
    new[1:] = (tt[1:] != tt[:-1]) | (ft[1:] - ft[:-1] > 1)
    piece = np.cumsum(new)  # CTC labels 1..K, by track then time
    label = np.empty(len(order), np.int64)
    label[order] = piece
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], len(order)) - 1
    rows = pd.DataFrame({"L": piece[starts], "B": ft[starts], "E": ft[ends], "track": tt[starts]})
    first_piece = ~np.append(False, tt[starts][1:] == tt[starts][:-1])
    last_of_track = rows.groupby("track")["L"].max()
    parent_track = parent[order][starts]
    p = np.where(
        first_piece,
        last_of_track.reindex(parent_track).fillna(0).to_numpy(np.int64),
        rows["L"].to_numpy() - 1,
    )
    rows["P"] = np.where(first_piece & (parent_track == 0), 0, p)
    return label, rows[["L", "B", "E", "P"]].astype(np.int64)
