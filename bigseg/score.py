"""Score detected nuclei against a truth table: one-to-one matching in µm.

Tracks too: :func:`track_scores` compares the links and divisions of two tracked
tables, :func:`ctc_scores` computes the Cell Tracking Challenge's measures (DET,
LNK, TRA, division scores BC) with py-ctcmetrics (``pip install bigseg[tracking]``)
from a result and a truth in the CTC format.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ._errors import InputError

__all__ = ["Score", "TrackScore", "ctc_scores", "match", "score", "track_scores"]

POSITION = ["z_um", "y_um", "x_um"]


@dataclass(frozen=True)
class Score:
    """Detection scores; errors are distances between matched centres in µm."""

    n_true: int
    n_found: int
    matched: int
    precision: float
    recall: float
    f1: float
    mean_error_um: float
    max_error_um: float

    def as_dict(self) -> dict:
        """Plain dict, e.g. for a results table."""
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"truth {self.n_true}, found {self.n_found}, matched {self.matched}: "
            f"precision {self.precision:.3f}, recall {self.recall:.3f}, F1 {self.f1:.3f}, "
            f"centre error mean {self.mean_error_um:.2f} µm, max {self.max_error_um:.2f} µm"
        )


def _tolerance(truth: pd.DataFrame, tolerance_um: float | None) -> np.ndarray:
    if tolerance_um is not None:
        if not tolerance_um > 0:
            raise InputError(f"--tolerance {tolerance_um} must be a positive distance in µm.")
        return np.full(len(truth), float(tolerance_um))
    for column in ("r_um", "radius_um"):
        if column in truth:
            return 0.5 * truth[column].to_numpy(float)
    raise InputError(
        "The truth table has no radius column (r_um or radius_um) to derive the matching "
        "tolerance from; give one with --tolerance UM."
    )


def _check_columns(table: pd.DataFrame, what: str) -> None:
    missing = [c for c in POSITION if c not in table]
    if missing:
        raise InputError(
            f"The {what} table lacks the columns {missing}; it needs z_um, y_um, x_um."
        )


def match(
    found: pd.DataFrame, truth: pd.DataFrame, *, tolerance_um: float | None = None
) -> pd.DataFrame:
    """Match found nuclei to true ones one-to-one, minimising the total distance.

    A pair can match when its centres are closer than the tolerance: by default
    half the true nucleus's radius (``r_um``).  Matching is done per time point
    (``t`` column, when both tables have one) and per cluster of candidate
    pairs, so it stays fast on large tables.

    Returns
    -------
    pandas.DataFrame
        Columns ``found`` and ``truth`` (row positions) and ``error_um``.
    """
    _check_columns(found, "found")
    _check_columns(truth, "truth")
    tol = _tolerance(truth, tolerance_um)
    f = found[POSITION].to_numpy(float)
    g = truth[POSITION].to_numpy(float)
    if "t" in found and "t" in truth:
        big = 10.0 * (np.nanmax(np.abs(np.vstack([f, g])), initial=1.0) + tol.max(initial=1.0))
        f = np.column_stack([f, found["t"].to_numpy(float) * big])
        g = np.column_stack([g, truth["t"].to_numpy(float) * big])
    empty = pd.DataFrame(
        {
            "found": pd.Series(dtype="int64"),
            "truth": pd.Series(dtype="int64"),
            "error_um": pd.Series(dtype="float64"),
        }
    )
    if len(f) == 0 or len(g) == 0:
        return empty
    pairs = cKDTree(g).query_ball_point(f, r=float(tol.max()))
    fi = np.repeat(np.arange(len(f)), [len(p) for p in pairs])
    gi = np.fromiter((j for p in pairs for j in p), np.int64, count=fi.size)
    dist = np.linalg.norm(f[fi, :3] - g[gi, :3], axis=1)
    ok = dist <= tol[gi]
    fi, gi, dist = fi[ok], gi[ok], dist[ok]
    if fi.size == 0:
        return empty
    # Solve the assignment separately in each connected cluster of candidates.
    from scipy.optimize import linear_sum_assignment  # on first use: 30 ms off every start

    n = len(f) + len(g)
    graph = coo_matrix((np.ones(fi.size), (fi, len(f) + gi)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    cand = pd.DataFrame({"f": fi, "g": gi, "d": dist, "c": comp[fi]})
    rows = []
    for _, part in cand.groupby("c", sort=False):
        fu, finv = np.unique(part["f"].to_numpy(), return_inverse=True)
        gu, ginv = np.unique(part["g"].to_numpy(), return_inverse=True)
        cost = np.full((fu.size, gu.size), 1e9)
        cost[finv, ginv] = part["d"].to_numpy()
        r, c = linear_sum_assignment(cost)
        good = cost[r, c] < 1e9
        rows.append(np.column_stack([fu[r[good]], gu[c[good]], cost[r[good], c[good]]]))
    result = np.vstack(rows)
    return pd.DataFrame(
        {
            "found": result[:, 0].astype(np.int64),
            "truth": result[:, 1].astype(np.int64),
            "error_um": result[:, 2],
        }
    )


def score(found: pd.DataFrame, truth: pd.DataFrame, *, tolerance_um: float | None = None) -> Score:
    """Precision, recall, F1 and centre errors of ``found`` against ``truth``.

    Parameters
    ----------
    found, truth : pandas.DataFrame
        Tables with ``z_um, y_um, x_um`` (and optionally ``t``); ``truth``
        needs ``r_um`` unless ``tolerance_um`` is given.
    tolerance_um : float, optional
        Fixed matching distance; default half of each true radius.

    Returns
    -------
    Score
    """
    pairs = match(found, truth, tolerance_um=tolerance_um)
    m = len(pairs)
    precision = m / len(found) if len(found) else float(len(truth) == 0)
    recall = m / len(truth) if len(truth) else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    errors = pairs["error_um"].to_numpy()
    return Score(
        n_true=len(truth),
        n_found=len(found),
        matched=m,
        precision=precision,
        recall=recall,
        f1=f1,
        mean_error_um=float(errors.mean()) if m else float("nan"),
        max_error_um=float(errors.max()) if m else float("nan"),
    )


@dataclass(frozen=True)
class TrackScore:
    """Link and division scores of a tracked table against a true lineage.

    Links are counted between the true nuclei that were found: consecutive found
    nuclei of one true track (or a mother's last and a daughter's first) make a true
    link; a found link is right when it joins the true nuclei of such a link.
    """

    links_true: int
    links_found: int
    links_matched: int
    link_precision: float
    link_recall: float
    link_f1: float
    divisions_true: int
    divisions_found: int
    divisions_matched: int
    division_precision: float
    division_recall: float
    division_f1: float

    def as_dict(self) -> dict:
        """Plain dict, e.g. for a results table."""
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"links: truth {self.links_true}, found {self.links_found}, right "
            f"{self.links_matched}: precision {self.link_precision:.3f}, recall "
            f"{self.link_recall:.3f}, F1 {self.link_f1:.3f}; divisions: truth "
            f"{self.divisions_true}, found {self.divisions_found}, right "
            f"{self.divisions_matched}: F1 {self.division_f1:.3f}"
        )


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _links(table: pd.DataFrame, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(source, target) row positions of the links of a tracked table, among ``keep`` rows."""
    rows = np.flatnonzero(keep)
    d = pd.DataFrame(
        {
            "row": rows,
            "t": table["t"].to_numpy(float)[rows],
            "track": table["track_id"].to_numpy(np.int64)[rows],
            "parent": table["parent_track_id"].to_numpy(np.int64)[rows],
        }
    ).sort_values(["track", "t"], kind="stable")
    same = d["track"].to_numpy()[1:] == d["track"].to_numpy()[:-1]
    src = [d["row"].to_numpy()[:-1][same]]
    dst = [d["row"].to_numpy()[1:][same]]
    g = d.groupby("track", sort=False)
    first, last = g.first(), g.last()
    daughters = first[first["parent"] > 0]
    has = daughters["parent"].isin(last.index).to_numpy()
    src.append(last.loc[daughters["parent"].to_numpy()[has], "row"].to_numpy())
    dst.append(daughters["row"].to_numpy()[has])
    return np.concatenate(src).astype(np.int64), np.concatenate(dst).astype(np.int64)


def _divisions(table: pd.DataFrame) -> pd.DataFrame:
    """Row and time of each mother's last nucleus (tracks that have daughters)."""
    parents = np.unique(table["parent_track_id"].to_numpy(np.int64))
    parents = parents[parents > 0]
    d = table.assign(row=np.arange(len(table)))
    mothers = d[d["track_id"].isin(parents)]
    last = mothers.sort_values("t").groupby("track_id").last()
    return last[["row", "t"]].reset_index()


def track_scores(
    found: pd.DataFrame, truth: pd.DataFrame, *, tolerance_um: float | None = None
) -> TrackScore:
    """Link and division precision, recall and F1 of a tracked table against the truth.

    Parameters
    ----------
    found, truth : pandas.DataFrame
        Tables with ``t, z_um, y_um, x_um, track_id, parent_track_id`` (``truth``:
        :func:`bigseg.synth.make_truth` with ``motion_um``, with ``r_um``).
    tolerance_um : float, optional
        Matching distance of nuclei (:func:`match`).

    Returns
    -------
    TrackScore
    """
    for table, what in ((found, "found"), (truth, "truth")):
        if "track_id" not in table or "parent_track_id" not in table:
            raise InputError(
                f"The {what} table has no track_id and parent_track_id columns; track it "
                "first (bigseg track OUT), or give a truth with a lineage (bigseg synth --motion)."
            )
    found = found.reset_index(drop=True)
    truth = truth.reset_index(drop=True)
    pairs = match(found, truth, tolerance_um=tolerance_um)
    to_truth = np.full(len(found), -1, np.int64)
    to_truth[pairs["found"].to_numpy()] = pairs["truth"].to_numpy()
    seen = np.zeros(len(truth), bool)
    seen[pairs["truth"].to_numpy()] = True
    ts, td = _links(truth, seen)
    fs, fd = _links(found, np.ones(len(found), bool))
    true_links = set(zip(ts.tolist(), td.tolist()))
    right = sum((int(a), int(b)) in true_links for a, b in zip(to_truth[fs], to_truth[fd]))
    lp = right / len(fs) if len(fs) else 1.0
    lr = right / len(ts) if len(ts) else 1.0
    true_div, found_div = _divisions(truth), _divisions(found)
    # A found division is right when its mother's last nucleus is a true mother's, found
    # within one time point of that mother's last.
    truth_track = truth["track_id"].to_numpy(np.int64)
    last_t = true_div.set_index("track_id")["t"]
    hits = set()
    for row, t in zip(found_div["row"].to_numpy(), found_div["t"].to_numpy(float)):
        g = to_truth[row]
        if g < 0 or truth_track[g] not in last_t.index:
            continue
        if abs(float(last_t.loc[truth_track[g]]) - t) <= 1:
            hits.add(int(truth_track[g]))
    dp = len(hits) / len(found_div) if len(found_div) else 1.0
    dr = len(hits) / len(true_div) if len(true_div) else 1.0
    return TrackScore(
        links_true=len(ts),
        links_found=len(fs),
        links_matched=int(right),
        link_precision=lp,
        link_recall=lr,
        link_f1=_f1(lp, lr),
        divisions_true=len(true_div),
        divisions_found=len(found_div),
        divisions_matched=len(hits),
        division_precision=dp,
        division_recall=dr,
        division_f1=_f1(dp, dr),
    )


#: The CTC measures :func:`ctc_scores` computes by default.
CTC_METRICS = ("DET", "LNK", "TRA", "BC")


def ctc_scores(result: str, truth: str, *, metrics: tuple[str, ...] = CTC_METRICS) -> dict:
    """Compute the Cell Tracking Challenge's measures of a CTC result against a CTC truth.

    Computed by py-ctcmetrics (the ``tracking`` extra: ``pip install bigseg[tracking]``).

    Parameters
    ----------
    result : str
        A folder with ``res_track.txt`` and ``mask000.tif`` ... (``bigseg export-ctc``).
    truth : str
        A folder with ``TRA/man_track.txt`` and ``TRA/man_track000.tif`` ...
        (``bigseg synth --motion``, or a CTC data set's ``*_GT`` folder).
    metrics : tuple of str
        py-ctcmetrics' names: ``DET``, ``LNK``, ``TRA``, ``BC`` (division scores
        ``BC(0)`` ... ``BC(3)``: a division matched within 0-3 frames) and others.

    Returns
    -------
    dict
        Each measure by name, as plain floats and ints.
    """
    try:
        from ctc_metrics.scripts.evaluate import calculate_metrics, load_data
    except ImportError as exc:
        raise InputError(
            "The CTC measures need py-ctcmetrics; install it with pip install 'bigseg[tracking]'."
        ) from exc
    import contextlib
    import io
    import os

    for folder, inner in ((result, "res_track.txt"), (truth, os.path.join("TRA", "man_track.txt"))):
        if not os.path.isfile(os.path.join(folder, inner)):
            raise InputError(
                f"{folder!r} has no {inner}; give a CTC folder (bigseg export-ctc OUT DIR "
                "writes one)."
            )
    with contextlib.redirect_stdout(io.StringIO()):
        comp, ref, traj, segm, _, valid = load_data(result, truth, True, False, threads=1)
        values = calculate_metrics(comp, ref, traj, segm, list(metrics), valid)
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in values.items()}
