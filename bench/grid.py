"""The synthetic matrix of issue 14 and the default method's scores on it (used by accuracy.py).

Run from the repository root:  ``.venv/bin/python bench/grid.py [--kinds] [--quick] [--seeds 0-9]``

``--conditions`` scores the held-out 3D kind under the microscope's blur, other voxel sizes,
dimmer nuclei and a denser field (:data:`CONDITIONS`).

``--misses`` classifies every true nucleus missed in the cells of small touching nuclei
(:func:`misses`: merged, found but unmatched, dropped as a fragment, absent).

``--seeds`` draws the matrix (default seed 0) or the kinds (default seeds 0 and 1) anew with
other generator seeds: a change is taken only where seeds it was not tuned on agree.

``--save CSV`` keeps the per-cell table; ``--against CSV`` (a table another version saved,
e.g. run from a ``git archive`` of it) prints in how many cells F1 rose and fell, and which fell.

Every case is drawn by :func:`bigseg.synth.make_truth` and :func:`bigseg.synth.render`: radii
from 1.1x ``min_radius`` to ``max_radius`` (three ranges), brightness log-normal over tenfold,
dark offsets 0 and 30 000 (the latter with autofluorescence and uneven illumination), none or a
quarter of the nuclei touching another, 3D stacks and 2D time-lapses, with nuclear texture.  The
named kinds (``bigseg synth --kind``) mimic the held-out data of the issue.  bigseg runs with its
defaults, the voxel size its only option.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bigseg  # noqa: E402
from bigseg import cluster, methods  # noqa: E402
from bigseg.measure import measure  # noqa: E402
from bigseg.methods.default import signal_of  # noqa: E402
from bigseg.score import match  # noqa: E402
from bigseg.segment import segment_whole_planes  # noqa: E402
from bigseg.stack import as_4d, as_stack  # noqa: E402
from bigseg.synth import (  # noqa: E402
    kind_options,
    make_truth,
    render,
    synth_kind,
    visible_centres,
)

SCALE = (1.5, 0.71, 0.71)
MIN_R = bigseg.Params().min_radius
MAX_R = bigseg.Params().max_radius
RADII = {
    "small": (1.1 * MIN_R, 1.6 * MIN_R),
    "medium": (1.6 * MIN_R, 3.0 * MIN_R),
    "large": (3.0 * MIN_R, 0.9 * MAX_R),
}
SHAPES = {"3d": ((32, 192, 192), 1), "2d": ((1, 256, 256), 2)}
OFFSETS = (0.0, 30000.0)
TOUCHING = (0.0, 0.25)


def detections(image: np.ndarray, scale, params: bigseg.Params | None = None):
    """bigseg in memory on a ``(t, z, y, x)`` array up to its per-plane detections.

    Returns the stack, its floors (one per time point), the plane labels (lazy) and
    the detections table: threshold, segment and measure.
    """
    params = params or bigseg.Params()
    stack = as_stack(image, scale=scale, dims=("t", "z", "y", "x")).chunk({"t": 1, "z": 8})
    thr = bigseg.global_threshold(stack, params=params).compute()
    # whole planes, as a run segments and measures them, with each region's signal peak
    labels, peak = segment_whole_planes(stack, params=params, threshold=thr.values)
    return stack, thr, labels, measure(labels, stack, peak).compute()


def default_nuclei(image: np.ndarray, scale, params: bigseg.Params | None = None) -> pd.DataFrame:
    """bigseg in memory on a ``(t, z, y, x)`` array: threshold, segment, measure, link."""
    params = params or bigseg.Params()
    planar = image.shape[1] == 1
    det = detections(image, scale, params)[3]
    linked = bigseg.link(det, params=params, scale=scale, planar=planar)
    return bigseg.nuclei_table(linked, scale=scale, planar=planar)


def case(dims: str, radii: str, offset: float, touching: float, seed: int):
    """One cell of the matrix: (image, truth, scale, offset)."""
    shape, t = SHAPES[dims]
    lo, hi = RADII[radii]
    extent = np.array(shape) * np.array(SCALE)
    r = (lo + hi) / 2
    if dims == "3d":
        n = 0.06 * extent.prod() / (4 / 3 * np.pi * r**3)
    else:
        n = 0.15 * extent[1:].prod() / (np.pi * r**2)
    truth = make_truth(
        shape, int(np.clip(n, 6, 80)), scale=SCALE, t=t, seed=seed, radius_um=(lo, hi),
        brightness=(300.0, 3000.0), brightness_spread=10.0, touching=touching,
    )  # fmt: skip
    options: dict = {"texture": 0.1, "read_noise": 15.0}
    if offset:
        options.update(offset=offset, max_value=65535, autofluorescence=150.0, illumination=0.3)
    image = render(truth, (0, 0, 0, 0), (t, *shape), scale=SCALE, noise_seed=seed, **options)
    return image, truth, SCALE


def scored(
    found: pd.DataFrame, truth: pd.DataFrame, shape=None, scale=SCALE
) -> tuple[bigseg.Score, pd.DataFrame, float]:
    """The score, the truth with a ``found`` column (matched or not), and the visible error.

    The visible error is the mean distance of the same matched pairs to the centroid of
    the part of each true nucleus inside the ``(z, y, x)`` stack ``shape``
    (:func:`bigseg.synth.visible_centres`): a nucleus cut by the stack's top or bottom
    has its true centre where no method sees it.
    """
    s = bigseg.score(found, truth)
    pairs = match(found, truth)
    hit = np.zeros(len(truth), bool)
    hit[pairs["truth"].to_numpy()] = True
    visible = np.nan
    if shape is not None and len(pairs):
        seen = visible_centres(truth, shape, scale=scale)[["z_um", "y_um", "x_um"]].to_numpy()
        at = found[["z_um", "y_um", "x_um"]].to_numpy(float)[pairs["found"].to_numpy()]
        visible = float(np.linalg.norm(at - seen[pairs["truth"].to_numpy()], axis=1).mean())
    return s, truth.assign(found=hit), visible


def grid(seeds=(0,), quick: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores of every case of the matrix; and every true nucleus with found or not."""
    rows, truths = [], []
    cells = list(itertools.product(SHAPES, RADII, OFFSETS, TOUCHING, seeds))
    if quick:
        cells = cells[::3]
    for dims, radii, offset, touching, seed in cells:
        image, truth, scale = case(dims, radii, offset, touching, seed)
        t0 = time.perf_counter()
        found = default_nuclei(image, scale)
        s, marked, visible = scored(found, truth, image.shape[1:], scale)
        rows.append(
            {"dims": dims, "radii": radii, "offset": offset, "touching": touching, "seed": seed,
             "truth": s.n_true, "found": s.n_found, "precision": s.precision, "recall": s.recall,
             "f1": s.f1, "error_um": s.mean_error_um, "visible_um": visible,
             "s": time.perf_counter() - t0}
        )  # fmt: skip
        truths.append(marked.assign(dims=dims, offset=offset, touching=touching))
    return pd.DataFrame(rows), pd.concat(truths, ignore_index=True)


def kinds(seeds=(0, 1)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores on the named kinds (``bigseg synth --kind``) at full size."""
    rows, truths = [], []
    for kind, seed in itertools.product(("hela2d", "ovals2d", "heldout3d", "series"), seeds):
        image, truth, scale = synth_kind(kind, seed=seed)
        t0 = time.perf_counter()
        found = default_nuclei(image, scale)
        s, marked, visible = scored(found, truth, image.shape[1:], scale)
        rows.append(
            {"kind": kind, "seed": seed, "truth": s.n_true, "found": s.n_found,
             "precision": s.precision, "recall": s.recall, "f1": s.f1,
             "error_um": s.mean_error_um, "visible_um": visible, "s": time.perf_counter() - t0}
        )  # fmt: skip
        truths.append(marked.assign(kind=kind))
    return pd.DataFrame(rows), pd.concat(truths, ignore_index=True)


#: The held-out 3D kind (``heldout3d``: 60 x 273 x 273 µm, radii 3.2-8.5 µm, log-normal
#: brightness over tenfold, 15 % touching, autofluorescence over a dark offset) under
#: conditions nobody tuned to (:func:`conditions`): the microscope's blur (standard
#: deviations in µm, z first), other voxel sizes (the stack's extent kept), dimmer nuclei,
#: a denser field.  ``name: make_truth / render changes``.
CONDITIONS: dict[str, dict] = {
    "as the kind": {},
    "blur 0.8 µm in z": {"blur_um": (0.8, 0.15, 0.15)},
    "blur 1.2 µm in z": {"blur_um": (1.2, 0.2, 0.2)},
    "blur 1.8 µm in z": {"blur_um": (1.8, 0.25, 0.25)},
    "z step 0.5 µm": {"scale": (0.5, 0.71, 0.71)},
    "z step 1.0 µm": {"scale": (1.0, 0.71, 0.71)},
    "z step 2.0 µm": {"scale": (2.0, 0.71, 0.71)},
    "z step 3.0 µm": {"scale": (3.0, 0.71, 0.71)},
    "pixels 0.4 µm": {"scale": (1.5, 0.4, 0.4)},
    "pixels 1.0 µm": {"scale": (1.5, 1.0, 1.0)},
    "dim: 100-1 000": {"brightness": (100.0, 1000.0)},
    "1.5x denser, 30 % touching": {"density": 1.5, "touching": 0.3},
    "z step 2.0 µm, blur 1.2 µm": {"scale": (2.0, 0.71, 0.71), "blur_um": (1.2, 0.2, 0.2)},
}


def condition_case(name: str, seed: int):
    """One stack of :data:`CONDITIONS`: (image, truth, scale)."""
    spec = kind_options("heldout3d", seed)
    change = dict(CONDITIONS[name])
    scale = tuple(change.pop("scale", spec["scale"]))
    extent = np.array(spec["shape"]) * np.array(spec["scale"])
    shape = tuple(int(round(e / s)) for e, s in zip(extent, scale))
    nuclei = int(spec["nuclei"] * change.pop("density", 1.0))
    truth_options = {k: v for k, v in spec["truth"].items() if k != "radius_px"}
    # the kind's radii, in µm (its pixels are 0.71 µm), whatever the pixels here
    truth_options["radius_um"] = tuple(r * spec["scale"][2] for r in spec["truth"]["radius_px"])
    for key in ("brightness", "touching"):
        if key in change:
            truth_options[key] = change.pop(key)
    truth = make_truth(shape, nuclei, scale=scale, t=1, seed=seed, **truth_options)
    image = render(truth, (0, 0, 0, 0), (1, *shape), scale=scale, noise_seed=seed,
                   **{**spec["render"], **change})  # fmt: skip
    return image, truth, scale


def conditions(seeds=(0, 1)) -> pd.DataFrame:
    """Scores of the default on :data:`CONDITIONS` (one row per condition and seed)."""
    rows = []
    for name, seed in itertools.product(CONDITIONS, seeds):
        image, truth, scale = condition_case(name, seed)
        t0 = time.perf_counter()
        s = scored(default_nuclei(image, scale), truth, image.shape[1:], scale)[0]
        rows.append(
            {"condition": name, "seed": seed, "shape": "x".join(map(str, image.shape[1:])),
             "truth": s.n_true, "found": s.n_found, "precision": s.precision,
             "recall": s.recall, "f1": s.f1, "error_um": s.mean_error_um,
             "s": time.perf_counter() - t0}
        )  # fmt: skip
        print(f"{name}, seed {seed}: F1 {s.f1:.3f}", flush=True)
    return pd.DataFrame(rows)


#: Where the misses of a cell come from (:func:`misses`), in the order they are tried.
MISS_CLASSES = (
    "merged",  # mostly inside a found nucleus that matches another true one
    "merged, matching neither",  # mostly inside a found nucleus that holds another true one too
    "found, unmatched",  # mostly inside a found nucleus of its own whose centre is too far
    "dropped as a fragment",  # its largest piece was linked, then dropped by drop_small
    "partly in a neighbour",  # under half inside a found nucleus that matches another one
    "absent, under the floor",  # no detection; its peak above the background under the floor
    "absent, above the floor",  # no detection although its peak is above the floor
)


def _linked_before_and_after(det: pd.DataFrame, params: bigseg.Params, scale, planar: bool):
    """The linking of :func:`bigseg.link` with ``params``, and the ids before ``drop_small``."""
    options = methods.get(params.preset).link_options(params)
    out = det.reset_index(drop=True)
    component = cluster.components(
        out, link_distance=options["link_distance"], max_gap=options["max_gap"]
    )
    smallest = 4 / 3 * np.pi * (cluster.FRAGMENT_FRACTION * float(params.min_radius)) ** 3
    drift = None if planar else smallest / float(scale[0])
    out["nucleus"] = cluster._nuclei(out, component, options["neck_ratio"], drift)
    out["before"] = out["nucleus"]
    kept = cluster.drop_small(out, scale=scale, min_radius=params.min_radius, planar=planar)
    return out, kept


def _owners(truth: pd.DataFrame, shape, scale) -> np.ndarray:
    """Label volume ``(t, z, y, x)`` of the true nuclei (row position + 1), inside ``r_um``.

    A voxel inside two (touching nuclei overlap by up to 5 %) goes to the one it is deeper in.
    """
    owner = np.zeros(shape, np.int32)
    depth = np.full(shape, np.inf)
    axes = [np.arange(n) * s for n, s in zip(shape[1:], scale)]
    for i, row in enumerate(truth.itertuples(index=False)):
        sel = [
            np.flatnonzero(np.abs(a - c) <= row.r_um)
            for a, c in zip(axes, (row.z_um, row.y_um, row.x_um))
        ]
        if not all(s.size for s in sel):
            continue
        zz, yy, xx = np.meshgrid(*(a[s] for a, s in zip(axes, sel)), indexing="ij")
        rel = np.sqrt((zz - row.z_um) ** 2 + (yy - row.y_um) ** 2 + (xx - row.x_um) ** 2) / row.r_um
        box = (int(row.t), *(slice(s[0], s[-1] + 1) for s in sel))
        take = (rel < 1) & (rel < depth[box])
        owner[box] = np.where(take, i + 1, owner[box])
        depth[box] = np.where(take, rel, depth[box])
    return owner


def misses(
    image: np.ndarray, truth: pd.DataFrame, scale, params: bigseg.Params | None = None
) -> pd.DataFrame:
    """Every true nucleus the default method misses in ``image``, with where it was lost.

    The run is :func:`default_nuclei`'s, stage by stage: the true nuclei's voxels (inside
    ``r_um``) are compared with the found nuclei's per-plane regions, before and after
    the fragment filter.  ``cls`` is one of :data:`MISS_CLASSES`; ``cover`` the fraction of
    its voxels in the found nucleus holding most of them; ``piece_um3`` the volume of its
    largest linked piece before the fragment filter; ``peak_floors`` the highest signal
    above the background (:func:`bigseg.methods.default.signal_of`) in its voxels, in
    floors; ``peak_ratio`` that peak against the brightest neighbour's within 1.5 times the
    sum of their radii; ``in_regions`` the fraction of its voxels in any plane's region.
    """
    params = params or bigseg.Params()
    planar = image.shape[1] == 1
    stack, thr, labels, det = detections(image, scale, params)
    before, kept = _linked_before_and_after(det, params, scale, planar)
    found = bigseg.nuclei_table(kept, scale=scale, planar=planar)
    pairs = match(found, truth)
    matched_truth = np.zeros(len(truth), bool)
    matched_truth[pairs["truth"].to_numpy()] = True
    truth_of_found = dict(
        zip(found["nucleus"].to_numpy()[pairs["found"].to_numpy()], pairs["truth"])
    )
    # Per-plane region ids -> nucleus ids before and after the fragment filter (0: none).
    regions = np.asarray(labels.compute() if hasattr(labels, "compute") else labels)
    regions = regions.reshape(image.shape)
    pre = np.zeros(image.shape, np.int64)
    post = np.zeros(image.shape, np.int64)
    after = dict(zip(zip(kept["t"], kept["z"], kept["label"]), kept["nucleus"]))
    for (t, z), part in before.groupby(["t", "z"]):
        plane = regions[int(t), int(z)]
        lut_pre = np.zeros(int(plane.max()) + 1, np.int64)
        lut_post = np.zeros_like(lut_pre)
        for label, nucleus in zip(part["label"].to_numpy(), part["before"].to_numpy()):
            if label < lut_pre.size:
                lut_pre[label] = nucleus
                lut_post[label] = after.get((t, z, label), 0)
        pre[int(t), int(z)], post[int(t), int(z)] = lut_pre[plane], lut_post[plane]
    owner = _owners(truth, image.shape, scale)
    signal = np.asarray(signal_of(as_4d(stack).data, params, scale).compute())
    floors = np.asarray(thr.values, float).reshape(-1)
    voxel = float(np.prod(scale))
    volume_pre = before.groupby("before")["area_um2"].sum() * float(scale[0])
    peaks = np.array([signal[owner == i + 1].max(initial=0.0) for i in range(len(truth))])
    centres = truth[["z_um", "y_um", "x_um"]].to_numpy(float)
    rows = []
    for i in np.flatnonzero(~matched_truth):
        row = truth.iloc[i]
        mask = owner == i + 1
        n = int(mask.sum())
        ids, counts = np.unique(post[mask], return_counts=True)
        ids, counts = ids[ids > 0], counts[ids > 0]
        best = int(ids[np.argmax(counts)]) if ids.size else 0
        cover = float(counts.max() / max(n, 1)) if ids.size else 0.0
        p_ids, p_counts = np.unique(pre[mask], return_counts=True)
        p_ids, p_counts = p_ids[p_ids > 0], p_counts[p_ids > 0]
        piece = int(p_ids[np.argmax(p_counts)]) if p_ids.size else 0
        piece_cover = float(p_counts.max() / max(n, 1)) if p_ids.size else 0.0
        piece_dropped = piece > 0 and not (post[pre == piece] > 0).any()
        other = truth_of_found.get(best, -1)
        holds_other = False
        if best:
            o_ids, o_counts = np.unique(owner[post == best], return_counts=True)
            sizes = np.bincount(owner.ravel(), minlength=len(truth) + 1)
            holds_other = any(
                c >= 0.25 * sizes[o] for o, c in zip(o_ids, o_counts) if o not in (0, i + 1)
            )
        floor_t = floors[min(int(row["t"]), floors.size - 1)]
        same_t = truth["t"].to_numpy() == row["t"]
        apart = np.linalg.norm(centres - centres[i], axis=1)
        near = same_t & (apart < 1.5 * (truth["r_um"].to_numpy() + row["r_um"]))
        near[i] = False
        neighbour = peaks[near].max(initial=0.0)
        if cover >= 0.5 and other >= 0:
            cls = "merged"
        elif cover >= 0.5 and holds_other:
            cls = "merged, matching neither"
        elif cover >= 0.5:
            cls = "found, unmatched"
        elif piece_dropped and piece_cover > cover:
            cls = "dropped as a fragment"
        elif cover > 0 and other >= 0:
            cls = "partly in a neighbour"
        elif peaks[i] < floor_t:
            cls = "absent, under the floor"
        else:
            cls = "absent, above the floor"
        rows.append(
            {"nucleus": int(row["nucleus"]), "t": int(row["t"]), "r_px": row["r_um"] / scale[1],
             "brightness": row["brightness"], "cls": cls, "cover": cover,
             "piece_um3": float(volume_pre.get(piece, 0.0)) if piece else 0.0,
             "true_um3": n * voxel, "peak_floors": peaks[i] / floor_t,
             "peak_ratio": peaks[i] / neighbour if neighbour > 0 else np.inf,
             "in_regions": float((pre[mask] > 0).mean()) if n else 0.0}
        )  # fmt: skip
    return pd.DataFrame(rows, columns=[
        "nucleus", "t", "r_px", "brightness", "cls", "cover", "piece_um3", "true_um3",
        "peak_floors", "peak_ratio", "in_regions"])  # fmt: skip


def miss_grid(seeds=(0,), radii=("small",), touching=(0.25,)) -> pd.DataFrame:
    """:func:`misses` over the cells of the matrix with these radii and touching fractions."""
    tables = []
    for dims, rad, offset, touch, seed in itertools.product(
        SHAPES, radii, OFFSETS, touching, seeds
    ):
        image, truth, scale = case(dims, rad, offset, touch, seed)
        lost = misses(image, truth, scale)
        tables.append(lost.assign(dims=dims, radii=rad, offset=offset, touching=touch, seed=seed))
    return pd.concat(tables, ignore_index=True)


def report_misses(lost: pd.DataFrame) -> None:
    """Print the misses per class (3D and 2D apart) and each miss."""
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(lost.to_string(index=False, float_format="{:.2f}".format))
        counts = lost.groupby(["dims", "cls"]).size().unstack(0, fill_value=0)
        print("misses per class:")
        print(counts.reindex([c for c in MISS_CLASSES if c in counts.index]).to_string())
        print(f"total: {len(lost)}")


def recall_by(truth: pd.DataFrame, column: str, bins) -> pd.Series:
    """Recall of true nuclei binned by ``column``."""
    return truth.groupby(pd.cut(truth[column], bins), observed=True)["found"].mean()


def pooled(table: pd.DataFrame) -> tuple[float, float, float]:
    """Precision, recall and F1 of the rows of a score table taken together."""
    m = table[["truth", "found"]].sum()
    matched = (table["recall"] * table["truth"]).sum()
    p, r = matched / max(m["found"], 1), matched / max(m["truth"], 1)
    return p, r, 2 * p * r / max(p + r, 1e-12)


def report(table: pd.DataFrame, truth: pd.DataFrame) -> None:
    """Print a score table, its totals and recall by radius (px), brightness and offset."""
    print(table.to_string(index=False, float_format="%.3f"))
    cells = [c for c in ("dims", "radii", "offset", "touching", "kind") if c in table]
    if table["seed"].nunique() > 1:
        print("F1 per cell over the seeds (min, mean) and cells under 0.95:")
        by = table.groupby(cells)["f1"]
        summary = by.agg(["min", "mean"]).assign(under=by.apply(lambda f: int((f < 0.95).sum())))
        print(summary.to_string(float_format="%.3f"))
    p, r, f1 = pooled(table)
    if "dims" in table:
        for dims, part in table.groupby("dims"):
            fp, fr, ff = pooled(part)
            under = int((part["f1"] < 0.95).sum())
            print(f"{dims} pooled: precision {fp:.3f} recall {fr:.3f} F1 {ff:.3f}; ", end="")
            print(f"min F1 {part['f1'].min():.3f}; cells under 0.95: {under} of {len(part)}")
    worst, error = table["f1"].min(), table["error_um"].mean()
    under = int((table["f1"] < 0.95).sum())
    print(f"pooled: precision {p:.3f} recall {r:.3f} F1 {f1:.3f}; min F1 {worst:.3f}; ", end="")
    print(f"cells under 0.95: {under} of {len(table)}; mean error {error:.2f} µm, ", end="")
    print(f"largest {table['error_um'].max():.2f} µm")
    if "visible_um" in table:
        v, over = table["visible_um"], int((table["error_um"] > 1).sum())
        print(
            f"centre error against the visible part of each true nucleus: mean {v.mean():.2f} µm,"
        )
        print(
            f"largest {v.max():.2f} µm; cells over 1 µm: {over} against the true centre, ", end=""
        )
        print(f"{int((v > 1).sum())} against the visible part")
    truth = truth.assign(r_px=truth["r_um"] / SCALE[1])
    parts = [("", truth)]
    if "dims" in truth and truth["dims"].nunique() > 1:
        parts += [(f" ({dims} cells)", part) for dims, part in truth.groupby("dims")]
    for label, part in parts:
        print(f"recall by true radius (px){label}:")
        print(recall_by(part, "r_px", [0, 5, 6, 7, 9, 12, 21]).to_string(float_format="%.3f"))
        print(f"recall by brightness (grey levels above the background){label}:")
        b = [0, 150, 300, 600, 1200, 2400, 1e9]
        print(recall_by(part, "brightness", b).to_string(float_format="%.3f"))
        if "offset" in part:
            print(f"recall by offset{label}:")
            print(part.groupby("offset")["found"].mean().to_string(float_format="%.3f"))


def seeds_of(text: str | None, default: tuple[int, ...]) -> tuple[int, ...]:
    """The seeds of ``--seeds 0-9`` or ``--seeds 3,5`` (``text``), else ``default``."""
    if text is None:
        return default
    if "-" in text:
        lo, hi = (int(v) for v in text.split("-"))
        return tuple(range(lo, hi + 1))
    return tuple(int(v) for v in text.split(","))


def against(table: pd.DataFrame, path: str) -> None:
    """Print how each cell's F1 moved from a table saved by ``--save`` (another version's run)."""
    keys = [c for c in ("dims", "radii", "offset", "touching", "kind", "seed") if c in table]
    before = pd.read_csv(path).set_index(keys)["f1"]
    now = table.set_index(keys)["f1"]
    moved = (now - before.reindex(now.index)).dropna()
    print(
        f"against {path}: {len(moved)} cells; F1 higher in {int((moved > 1e-9).sum())}, "
        f"lower in {int((moved < -1e-9).sum())}; mean {before.mean():.4f} -> {now.mean():.4f}"
    )
    for index, change in moved[moved < -1e-9].items():
        print(f"  lower: {index} {change:+.3f}")


def add_seeds(parser: argparse.ArgumentParser, default: tuple[int, ...]) -> None:
    """Add ``--seeds`` (read with :func:`seeds_of`) to a bench's ``parser``."""
    shown = ",".join(str(s) for s in default)
    parser.add_argument(
        "--seeds", metavar="SEEDS", help=f"generator seeds, e.g. 0-9 or 3,5 (default {shown})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--kinds", action="store_true", help="the named kinds instead (default seeds 0,1)"
    )
    parser.add_argument("--quick", action="store_true", help="a smaller matrix")
    parser.add_argument(
        "--misses", action="store_true", help="classify the misses of small touching nuclei"
    )
    parser.add_argument("--save", metavar="CSV", help="keep the per-cell table")
    parser.add_argument(
        "--against", metavar="CSV", help="a table another version saved: which cells moved"
    )
    parser.add_argument(
        "--conditions",
        action="store_true",
        help="the held-out 3D kind under blur, other voxel sizes, dimmer, denser (seeds 0,1)",
    )
    add_seeds(parser, (0,))
    args = parser.parse_args()
    if args.conditions:
        table = conditions(seeds=seeds_of(args.seeds, (0, 1)))
        means = table.groupby("condition", sort=False)[["precision", "recall", "f1"]].mean()
        print(means.round(3).to_string())
        if args.save:
            table.to_csv(args.save, index=False)
        return
    if args.misses:
        report_misses(miss_grid(seeds=seeds_of(args.seeds, (0,))))
        return
    if args.kinds:
        table, truth = kinds(seeds=seeds_of(args.seeds, (0, 1)))
    else:
        table, truth = grid(seeds=seeds_of(args.seeds, (0,)), quick=args.quick)
    report(table, truth)
    if args.save:
        table.to_csv(args.save, index=False)
    if args.against:
        against(table, args.against)


if __name__ == "__main__":
    main()
