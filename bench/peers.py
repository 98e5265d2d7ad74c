"""The peers' columns of the accuracy benchmark: the seed recipe and Voronoi-Otsu-Labeling.

Run from the repository root, after ``make bench-env`` (which creates ``bench/.venv-peers``)::

    .venv/bin/python bench/peers.py                  # every dataset, 21 sigma pairs
    .venv/bin/python bench/peers.py --only "qcanet 8-cell" --grid 2,2

Every method has the interface ``function(stack, scale) -> nuclei`` (a table with ``z_um,
y_um, x_um``, and ``t`` for time series) that ``bigseg.score`` takes; stacks are ``(z, y, x)``
or ``(t, z, y, x)`` NumPy arrays, frames with one plane being 2D images (see
``bench/_datasets.py``, whose functions give ``(stack, scale, truth)``).

- **recipe** (:func:`recipe_nuclei`): the 2014 scikit-image recipe as DESIGN.md writes it,
  plain and serial (per-plane detections from ``tests/reference_recipe.py``), sizes of
  ``--preset seed`` in pixels, its step 4 the single-linkage clustering on ``(y, x)`` cut at
  ``max_radius``.  A 2D frame has nothing to group: each detection is a nucleus.  Time
  series run frame by frame.
- **VOL** (:func:`vol_nuclei`, :func:`vol_tuned`): ``voronoi_otsu_labeling(image,
  spot_sigma, outline_sigma)`` of napari-segment-blobs-and-things-with-membranes, the real
  package, run in its own environment (``bench/.venv-peers``, or the interpreter named by
  ``BIGSEG_PEERS_PYTHON``) by ``bench/_vol_worker.py`` in a subprocess on the stack saved to
  a temporary ``.npy``: whole 3D stacks (sigmas in pixels, as its users pass them), 2D frames
  one by one.  Nuclei are the label image's region centroids times the voxel size.  Tuned per
  dataset as its users would: the best F1 against the truth over ``SIGMAS`` (21 pairs), or
  the count nearest a true count; with no truth, VOL's own defaults (2, 2).  Its seconds are
  the VOL calls of the winning pair alone (serial, in memory, inside the worker).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _path in (str(ROOT), str(BENCH)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import _datasets  # noqa: E402
from scipy.cluster.hierarchy import fcluster, linkage  # noqa: E402

import bigseg  # noqa: E402
from tests.reference_recipe import recipe_detections  # noqa: E402

#: The peers' environment's interpreter (``make bench-env``).
PEERS_PYTHON = Path(os.environ.get("BIGSEG_PEERS_PYTHON", BENCH / ".venv-peers" / "bin" / "python"))
WORKER = BENCH / "_vol_worker.py"

#: VOL's tuning grid: (spot_sigma, outline_sigma) in pixels, 7 x 3 = 21 pairs.
SIGMAS: tuple[tuple[float, float], ...] = tuple(
    (float(s), float(o)) for s in (1, 2, 3, 4, 5, 6, 8) for o in (1, 2, 3)
)
#: VOL's own defaults, used where there is no truth to tune against.
VOL_DEFAULT = (2.0, 2.0)


def peers_env_available() -> bool:
    """Whether the peers' environment (``bench/.venv-peers``) exists."""
    return PEERS_PYTHON.exists()


def as_4d(stack) -> np.ndarray:
    """A stack as a ``(t, z, y, x)`` NumPy array.

    NumPy arrays are ``(z, y, x)`` (one time point), ``(t, z, y, x)``, or ``(y, x)`` (one 2D
    frame); a bigseg stack (an ``xarray.DataArray`` with dims ``z, y, x`` or ``t, z, y, x``)
    goes by its dims.
    """
    dims = getattr(stack, "dims", None)
    if dims is not None and not isinstance(stack, np.ndarray):
        if tuple(dims) not in (("z", "y", "x"), ("t", "z", "y", "x")):
            raise ValueError(f"stack dims {tuple(dims)} must be (z, y, x) or (t, z, y, x).")
        data = np.asarray(stack)
        return data if data.ndim == 4 else data[None]
    stack = np.asarray(stack)
    if stack.ndim == 2:
        return stack[None, None]
    if stack.ndim == 3:
        return stack[None]
    if stack.ndim == 4:
        return stack
    raise ValueError(f"stack of shape {stack.shape} must be (z, y, x) or (t, z, y, x).")


def is_series(stack) -> bool:
    """Whether a stack is a time series (4D, or a DataArray with a ``t`` dim)."""
    dims = getattr(stack, "dims", None)
    if dims is not None and not isinstance(stack, np.ndarray):
        return "t" in dims
    return np.ndim(stack) == 4


def labels_to_nuclei(labels: np.ndarray, scale, *, time_series: bool | None = None) -> pd.DataFrame:
    """Nuclei centres of a label image: region centroids in pixels and times the voxel size.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(z, y, x)`` or ``(t, z, y, x)`` integer labels, 0 = background.
    scale : sequence of 3 floats
        Voxel size ``(z, y, x)`` in µm.
    time_series : bool, optional
        Whether to write a ``t`` column; default: when ``labels`` is 4D.

    Returns
    -------
    pandas.DataFrame
        ``t`` (time series only), ``label``, ``z, y, x`` (px), ``z_um, y_um, x_um``.
    """
    from skimage.measure import regionprops_table

    if time_series is None:
        time_series = is_series(labels)
    frames = []
    for t, frame in enumerate(as_4d(labels)):
        p = regionprops_table(np.asarray(frame), properties=("label", "centroid"))
        table = pd.DataFrame(
            {
                "t": np.full(len(p["label"]), t, np.int64),
                "label": p["label"],
                "z": p["centroid-0"],
                "y": p["centroid-1"],
                "x": p["centroid-2"],
            }
        )
        frames.append(table)
    out = pd.concat(frames, ignore_index=True)
    for axis, step in zip("zyx", scale):
        out[f"{axis}_um"] = out[axis] * float(step)
    return out if time_series else out.drop(columns="t")


# --- the recipe -------------------------------------------------------------------------------


def recipe_nuclei(stack: np.ndarray, scale, *, params: bigseg.Params | None = None) -> pd.DataFrame:
    """The seed recipe, serial and in memory: per-plane detections, then single linkage.

    Sizes are ``params`` (default ``--preset seed``) in pixels of ``scale``.  Single linkage
    on the detections' ``(y, x)`` cut at ``max_radius`` groups them into nuclei, whose centres
    are the intensity-weighted means; a 2D frame (one plane) has nothing to group.  Time
    series run frame by frame, each with its own threshold.
    """
    with warnings.catch_warnings():
        # The rank filters warn about their speed on 12- and 16-bit data; that is the recipe.
        warnings.filterwarnings("ignore", message="Bad rank filter performance")
        warnings.filterwarnings("ignore", message=".*bitdepth.*")
        params = params or bigseg.Params.from_preset("seed")
        px = params.in_pixels(scale)
        stack4 = as_4d(stack)
        frames = []
        for t, frame in enumerate(stack4):
            found = _recipe_frame(frame, scale, px)
            found.insert(0, "t", t)
            frames.append(found)
    out = pd.concat(frames, ignore_index=True)
    return out if is_series(stack) else out.drop(columns="t")


def _recipe_frame(stack: np.ndarray, scale, px) -> pd.DataFrame:
    det = recipe_detections(
        stack, smooth=px.smooth_radius, min_radius=px.min_radius, max_radius=px.max_radius,
        min_distance=px.min_distance,
    )  # fmt: skip
    det = det.rename(columns={"intensity_sum": "w"})[["z", "y", "x", "w"]]
    if stack.shape[0] == 1 or len(det) < 2:
        groups = np.arange(1, len(det) + 1)
    else:
        groups = fcluster(linkage(det[["y", "x"]].to_numpy(), "single"), px.max_radius, "distance")
    det["g"] = groups
    w = det["w"].clip(lower=1e-12)
    centre = (
        det[["z", "y", "x"]]
        .mul(w, axis=0)
        .groupby(det["g"])
        .sum()
        .div(w.groupby(det["g"]).sum(), axis=0)
    )
    return pd.DataFrame(
        {axis + "_um": centre[axis].to_numpy() * float(step) for axis, step in zip("zyx", scale)}
    )


# --- Voronoi-Otsu-Labeling --------------------------------------------------------------------


def vol_labels(stack: np.ndarray, pairs=(VOL_DEFAULT,)) -> tuple[list[np.ndarray], list[float]]:
    """VOL's labels for each ``(spot_sigma, outline_sigma)``, from the peers' environment.

    Returns
    -------
    labels : list of numpy.ndarray
        One ``(t, z, y, x)`` uint32 label image per pair (``stack``'s shape made 4D).
    seconds : list of float
        Per pair, the wall time of the VOL calls alone (all frames, serial, in memory).
    """
    labels, seconds = _vol_runs(stack, pairs)
    return list(labels), seconds


def _vol_runs(stack: np.ndarray, pairs):
    """Run the worker once over all ``pairs``; yield labels lazily, one pair at a time."""
    if not peers_env_available():
        raise FileNotFoundError(
            f"{PEERS_PYTHON} not found: create the peers' environment with `make bench-env`."
        )
    folder = Path(tempfile.mkdtemp(prefix="bigseg-peers-"))
    np.save(folder / "image.npy", as_4d(stack))
    (folder / "pairs.json").write_text(json.dumps([list(p) for p in pairs]))
    subprocess.run([str(PEERS_PYTHON), str(WORKER), str(folder)], check=True)
    seconds = json.loads((folder / "seconds.json").read_text())

    def labels():
        try:
            for k in range(len(pairs)):
                path = folder / f"labels_{k}.npy"
                out = np.load(path)
                path.unlink()
                yield out
        finally:
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()

    return labels(), seconds


def vol_nuclei(stack: np.ndarray, scale, *, spot_sigma=2.0, outline_sigma=2.0) -> pd.DataFrame:
    """VOL with one pair of sigmas (pixels), as nuclei centres in µm."""
    labels, _ = _vol_runs(stack, [(spot_sigma, outline_sigma)])
    return labels_to_nuclei(next(iter(labels)), scale, time_series=is_series(stack))


def vol_tuned(stack: np.ndarray, scale, truth, *, pairs=SIGMAS) -> tuple[pd.DataFrame, dict]:
    """VOL tuned against ``truth`` over ``pairs``: the best pair's nuclei, and what won.

    ``truth`` is a table (the pair of best F1 wins, ties to the first), a count (the pair
    whose count is nearest) or ``None`` (VOL's defaults, untuned).

    Returns
    -------
    nuclei : pandas.DataFrame
        The winning pair's centres (:func:`labels_to_nuclei`).
    info : dict
        ``sigmas`` (the winning pair), ``seconds`` (its VOL calls' wall time), ``grid_seconds``
        (the whole grid's VOL calls), ``tuned`` (whether a truth chose the pair).
    """
    if truth is None:
        pairs = [VOL_DEFAULT]
    series = is_series(stack)
    labels, seconds = _vol_runs(stack, pairs)
    best, best_key, best_found = -1, None, None
    for k, lab in enumerate(labels):
        found = labels_to_nuclei(lab, scale, time_series=series)
        if isinstance(truth, pd.DataFrame):
            key = bigseg.score(found, truth).f1
        elif isinstance(truth, int):
            key = -abs(len(found) - truth)
        else:
            key = 0.0
        if best_key is None or key > best_key:
            best, best_key, best_found = k, key, found
    info = {
        "sigmas": tuple(pairs[best]),
        "seconds": seconds[best],
        "grid_seconds": float(sum(seconds)),
        "tuned": truth is not None,
    }
    return best_found, info


# --- the table --------------------------------------------------------------------------------


def score_row(dataset: str, method: str, found: pd.DataFrame, truth) -> dict:
    """One row of the table: counts, and precision, recall, F1, centre error with a truth table."""
    out = {"dataset": dataset, "method": method, "found": len(found)}
    if isinstance(truth, pd.DataFrame):
        s = bigseg.score(found, truth)
        out.update(
            truth=s.n_true, precision=s.precision, recall=s.recall, f1=s.f1,
            error_um=s.mean_error_um,
        )  # fmt: skip
    elif isinstance(truth, int):
        out["truth"] = truth
    return out


def datasets(names=None):
    """``(name, loader)`` of the real stacks (when present) and the synthetic ones."""
    every = dict(_datasets.SYNTH)
    if _datasets.real_available():
        every.update(_datasets.REAL)
    else:
        print(f"(real stacks skipped: {_datasets.DATA} not found)", file=sys.stderr)
    if _datasets.dsb_available():  # VOL works in pixels: its F1 is the same at any pixel size
        every["dsb2018 2D, 0.5 µm"] = lambda: _datasets.dsb2018_2d(0.5)
    else:
        print("(StarDist's 2D image skipped: `make real-2d` fetches it)", file=sys.stderr)
    for name, load in every.items():
        if names is None or name in names:
            yield name, load


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", help="dataset names (default: all)")
    parser.add_argument(
        "--grid", nargs="+", help="VOL pairs as spot,outline (default: the 21 of SIGMAS)"
    )
    parser.add_argument("--no-recipe", action="store_true", help="VOL only")
    args = parser.parse_args(argv)
    pairs = (
        SIGMAS if args.grid is None else [tuple(float(v) for v in p.split(",")) for p in args.grid]
    )
    rows = []
    for name, load in datasets(args.only):
        stack, scale, truth = load()
        if not args.no_recipe:
            start = time.perf_counter()
            found = recipe_nuclei(stack, scale)
            rows.append(score_row(name, "recipe", found, truth))
            rows[-1]["seconds"] = time.perf_counter() - start
        found, info = vol_tuned(stack, scale, truth, pairs=pairs)
        method = "VOL tuned" if info["tuned"] else "VOL defaults"
        rows.append(score_row(name, method, found, truth))
        rows[-1].update(
            sigmas="{:g}, {:g}".format(*info["sigmas"]),
            seconds=info["seconds"],
            grid_seconds=info["grid_seconds"],
        )
        print(pd.DataFrame(rows[-2:]).to_string(index=False, float_format="%.3f"), flush=True)
    table = pd.DataFrame(rows)
    if "truth" in table:
        table["truth"] = table["truth"].astype("Int64")
    print("\nAll datasets:")
    print(table.to_string(index=False, float_format="%.3f", na_rep="-"))
    return table


if __name__ == "__main__":
    main()
