"""Accuracy of bigseg against truth: the plain serial recipe, ``--preset seed`` and ``default``.

Run from the repository root:  ``.venv/bin/python bench/accuracy.py [--real]``

After the real and named stacks below it prints the default method's scores on the named
kinds of issue 14 (``bigseg synth --kind hela2d | heldout3d | series``) and on the
synthetic matrix of ``bench/grid.py`` (recall by radius, brightness and offset); ``--real``
stops after the first table.

Datasets (real ones are skipped when ../shared/data is absent):

- synthetic, moderate density, hard (``bigseg synth --difficulty hard``): 40 nuclei in
  40 x 256 x 256 voxels of 1.5 x 0.71 x 0.71 µm;
- synthetic, high density, hard: 90 nuclei in the same volume;
- qcanet 8-cell (truth: 8_cell_stage_centres.csv), voxel 1.75 x 0.8 x 0.8 µm;
- qcanet 16-cell (truth: a count of 16);
- stardist_synthetic (truth: centres and equivalent radii of the mask3d.tif labels), 1 µm;
- the seed stack (no truth: the count of nuclei found);
- StarDist's 2D test image, real dense nuclei from the 2018 Data Science Bowl (truth: its 125
  labels), at 0.4, 0.5, 0.65 and 0.8 µm per pixel (none is stored), once ``make real-2d``
  has fetched it from the package registry (``bench/fetch_real.py``).

"recipe" is the 2014 scikit-image recipe written plainly and serially (``bench/peers.py``), with its
step 4 as DESIGN.md describes it: single-linkage clustering of the per-plane detections on
(y, x) cut at max_radius, each cluster's centre the intensity-weighted mean.

Every method runs with the default sizes (``--smooth-radius 3.55 --min-radius 2.84
--max-radius 14.2``) on every stack, the real ones included (their nuclei are 3 to 9.5 µm
in radius); ``QCANET`` holds size overrides for the qcanet stacks, none by default.
A match is a centre within half the true radius (``bigseg score``).  ``time_vs_seed`` is the
default preset's wall time over the seed preset's, measured in the same run (threshold,
segment, measure and link in memory on the local threaded scheduler).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import bigseg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _datasets  # noqa: E402
from grid import default_nuclei, grid, kinds, recall_by, report  # noqa: E402
from peers import recipe_nuclei  # noqa: E402

from bigseg.score import match
from bigseg.synth import DIFFICULTY, make_truth, render

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
QCANET: dict = {}


def bigseg_nuclei(stack: np.ndarray, scale, params: bigseg.Params) -> pd.DataFrame:
    """bigseg's lazy path in memory: threshold, segment, measure, link (as ``run`` does)."""
    return default_nuclei(stack[None], scale, params)


def datasets():
    """(name, stack, scale, truth, size overrides); truth is a table, a count or None."""
    sc = (1.5, 0.71, 0.71)
    hard = DIFFICULTY["hard"]
    for name, n, seed in [("synth moderate hard", 40, 1), ("synth dense hard", 90, 2)]:
        truth = make_truth((40, 256, 256), n, scale=sc, seed=seed, **hard["truth"])
        img = render(
            truth, (0, 0, 0, 0), (1, 40, 256, 256), scale=sc, noise_seed=seed, **hard["render"]
        )
        yield name, img[0], sc, truth, {}
    if not DATA.exists():
        print(f"(real stacks skipped: {DATA} not found)", file=sys.stderr)
        return
    import tifffile

    q = DATA / "qcanet_bbbc050"
    qsc = (1.75, 0.8, 0.8)
    yield (
        "qcanet 8-cell",
        tifffile.imread(q / "8_cell_stage_image.tif"),
        qsc,
        pd.read_csv(q / "8_cell_stage_centres.csv"),
        QCANET,
    )
    yield "qcanet 16-cell", tifffile.imread(q / "16_cell_stage_image.tif"), qsc, 16, QCANET
    s = DATA / "stardist_synthetic"
    yield (
        "stardist synthetic",
        tifffile.imread(s / "img3d.tif"),
        (1.0, 1.0, 1.0),
        stardist_truth(tifffile.imread(s / "mask3d.tif")),
        {},
    )
    yield "seed stack", tifffile.imread(DATA / "seed" / "test_nuclei_stack.tif"), sc, None, {}
    if not _datasets.dsb_available():
        print("(StarDist's 2D image skipped: `make real-2d` fetches it)", file=sys.stderr)
        return
    for pixel in _datasets.DSB_PIXELS:
        yield (f"dsb2018 2D, {pixel} µm", *_datasets.dsb2018_2d(pixel), {})


def stardist_truth(mask: np.ndarray) -> pd.DataFrame:
    """Centres and equivalent-sphere radii of a label image with 1 µm voxels."""
    from skimage.measure import regionprops_table

    p = regionprops_table(mask, properties=("label", "centroid", "area"))
    return pd.DataFrame(
        {
            "z_um": p["centroid-0"],
            "y_um": p["centroid-1"],
            "x_um": p["centroid-2"],
            "r_um": np.cbrt(3 * p["area"] / (4 * np.pi)),
        }
    )


def row(dataset: str, method: str, found: pd.DataFrame, truth) -> dict:
    """One line of the table: counts, and scores where the truth is a table."""
    out = {"dataset": dataset, "method": method, "found": len(found)}
    if isinstance(truth, pd.DataFrame):
        s = bigseg.score(found, truth)
        out.update(
            truth=s.n_true,
            precision=s.precision,
            recall=s.recall,
            f1=s.f1,
            error_um=s.mean_error_um,
        )
    elif isinstance(truth, int):
        out["truth"] = truth
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--real", action="store_true", help="stop after the real and named stacks' table"
    )
    args = parser.parse_args()
    import warnings

    # The recipe's rank filters warn about their speed on 12-bit data; that is the point.
    warnings.filterwarnings("ignore", message="Bad rank filter performance")
    rows = []
    for name, img, sc, truth, sizes in datasets():
        found = recipe_nuclei(img, sc, params=bigseg.Params.from_preset("seed", **sizes))
        rows.append(row(name, "recipe", found, truth))
        seconds = {}
        for preset in ("seed", "default"):
            params = bigseg.Params.from_preset(preset, **sizes)
            t0 = time.perf_counter()
            found = bigseg_nuclei(img, sc, params)
            seconds[preset] = time.perf_counter() - t0
            rows.append(row(name, preset, found, truth))
            if preset == "default" and isinstance(truth, pd.DataFrame) and "r_um" in truth:
                hit = np.zeros(len(truth), bool)
                hit[match(found, truth)["truth"].to_numpy()] = True
                by = recall_by(truth.assign(found=hit), "r_um", [0, 3, 4, 5, 6, 8, 12, 30])
                print(f"{name}, default: recall by true radius (µm):", by.round(3).to_dict())
        rows[-1]["time_vs_seed"] = seconds["default"] / seconds["seed"]
        print(pd.DataFrame(rows[-3:]).to_string(index=False, float_format="%.3f"), flush=True)
    table = pd.DataFrame(rows)
    print("\nAll datasets:")
    print(table.to_string(index=False, float_format="%.3f", na_rep="-"))
    if args.real:
        return
    print("\nThe named kinds (bigseg synth --kind), default method:")
    report(*kinds())
    print("\nThe synthetic matrix (bench/grid.py), default method:")
    report(*grid())


if __name__ == "__main__":
    main()
