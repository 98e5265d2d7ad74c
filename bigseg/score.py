"""Score detected nuclei against a truth table: one-to-one matching in µm."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ._errors import InputError

__all__ = ["Score", "match", "score"]

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
