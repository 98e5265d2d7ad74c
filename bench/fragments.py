"""Which dropped fragments would be nuclei?  Rules scored in memory (issue 14, measured)

Run from the repository root::

    .venv/bin/python bench/fragments.py [--seeds 0-9] [--real] [--kinds] [--pieces] [--lost]
    .venv/bin/python bench/fragments.py --planar [--kinds] [--seeds 0-9]

The largest class of misses left in the 3D cells of the matrix (``bench/grid.py --misses``)
is a small or dim nucleus whose piece the fragment filter (:func:`bigseg.cluster.drop_small`)
drops as smaller than the smallest nucleus.  Size alone cannot take those pieces back: the
real stacks hold dim objects of the same size that are not nuclei.  This prototype, in
memory, measures every dropped piece of a stack once (:func:`pieces`: the peak of the
default method's signal above the background in its voxels, its volume, whether it lies in
the first or last plane of its time point's detections, how close it comes to a kept
nucleus in its own planes) and then scores each rule of :data:`RULES` on the 3D cells of
the matrix (``--seeds``), the named 3D kinds (``--kinds``: heldout3d and series) and the
real stacks (``--real``).  ``--pieces`` prints the real stacks' dropped pieces, to read a
rule's margin off: how far the nearest false positive is from its thresholds; ``--lost``
the dropped pieces of the 3D cells that are missed true nuclei, and how near they lie to a
kept nucleus.  ``--planar`` scores :data:`PLANAR_RULES` on the 2D cells of the matrix (with
``--kinds``: the HeLa-like time-lapses, ``bigseg synth --kind hela2d``); none is built (the
rules that gain on the matrix lose on the HeLa-like kind: docs/accuracy.md, ninth round).

A measurement, not a method.  The rule chosen here (0.4 of the median, 0.75 ``min_radius``,
inside) is built into the fragment filter since (:func:`bigseg.cluster.bright_pieces`, with
the detections' private peak column :data:`bigseg.tables.PEAK`); the rules here are scored
against the filter without it (the column is dropped before linking).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _datasets  # noqa: E402
import grid  # noqa: E402

import bigseg  # noqa: E402
from bigseg.methods.default import signal_of  # noqa: E402
from bigseg.score import match  # noqa: E402
from bigseg.stack import as_4d  # noqa: E402
from bigseg.synth import synth_kind  # noqa: E402
from bigseg.tables import PEAK  # noqa: E402

MIN_R = float(bigseg.Params().min_radius)

#: Pixels (in-plane steps) within which a kept nucleus counts as touching a piece.
NEAR = (1, 3, 5)

#: ``name: (reference, X, V, inside, near)``: a dropped piece is kept when its signal peak
#: is at least ``X`` times the reference (``median``: the median peak of its time point's
#: kept nuclei; ``neighbour``: the brightest kept nucleus within ``near`` px in its
#: planes), its volume at least a sphere of ``V`` times ``min_radius``, and (``inside``)
#: it is not in the first or last plane of its time point's detections; with ``near``
#: it must lie within ``near`` px of a kept nucleus in one of its planes.
RULES = {
    "median 0.5 / 0.7 (sixth round)": ("median", 0.5, 0.7, False, None),
    "median 0.4 / 0.6": ("median", 0.4, 0.6, False, None),
    "median 0.4 / 0.7": ("median", 0.4, 0.7, False, None),
    "median 0.4 / 0.7, inside": ("median", 0.4, 0.7, True, None),
    "median 0.35 / 0.75, inside": ("median", 0.35, 0.75, True, None),
    "median 0.4 / 0.75, inside": ("median", 0.4, 0.75, True, None),
    "median 0.5 / 0.75, inside": ("median", 0.5, 0.75, True, None),
    "median 0.4 / 0.7, touching 1 px": ("median", 0.4, 0.7, False, 1),
    "median 0.4 / 0.7, within 3 px": ("median", 0.4, 0.7, False, 3),
    "neighbour 0.3 / 0.7, within 3 px": ("neighbour", 0.3, 0.7, False, 3),
}


def pieces(image: np.ndarray, scale) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The detections before and after the fragment filter, and one row per linked piece.

    A ``(t, z, y, x)`` stack; the pieces' columns: ``peak`` (signal above the background),
    ``volume`` µm³, ``radius`` (of the sphere of that volume, in ``min_radius``), ``kept``,
    ``ratio`` (peak over the median kept peak of its time point), ``floors`` (peak over
    its time point's floor), ``inside`` (not in the
    first or last plane of its time point's detections), ``near_D`` (the brightest kept
    nucleus within ``D`` px in one of its planes; NaN when none).
    """
    params = bigseg.Params()
    stack, floors, labels, det = grid.detections(image, scale, params)
    # the fragment filter without its own rule for bright pieces (built since): the rules
    # here are scored against the filter as it was
    det = det.drop(columns=PEAK)
    before, kept = grid._linked_before_and_after(det, params, scale, False)
    regions = np.asarray(labels.compute()).reshape(image.shape)
    signal = np.asarray(signal_of(as_4d(stack).data, params, scale).compute())
    peaks = np.empty(len(before))
    for (t, z), part in before.groupby(["t", "z"]):
        got = ndi.maximum(signal[int(t), int(z)], regions[int(t), int(z)], part["label"])
        peaks[part.index.to_numpy()] = np.atleast_1d(got)
    before = before.assign(peak=peaks)
    by = before.groupby("before")
    table = pd.DataFrame(
        {
            "t": by["t"].first(),
            "peak": by["peak"].max(),
            "volume": by["area_um2"].sum() * float(scale[0]),
            "low": by["z"].min(),
            "high": by["z"].max(),
        }
    )
    table["kept"] = table.index.isin(set(kept["before"]))
    table["radius"] = np.cbrt(table["volume"] / (4 / 3 * np.pi)) / MIN_R
    median = table[table["kept"]].groupby("t")["peak"].median()
    table["ratio"] = table["peak"] / table["t"].map(median)
    floor = np.asarray(floors.values, float).reshape(-1)
    table["floors"] = table["peak"] / floor[table["t"].to_numpy(int)]
    first, last = before.groupby("t")["z"].min(), before.groupby("t")["z"].max()
    table["inside"] = (table["low"] > table["t"].map(first)) & (
        table["high"] < table["t"].map(last)
    )
    kept_peak = table["peak"].where(table["kept"])
    for d in NEAR:
        table[f"near_{d}"] = _near(before, regions, kept_peak, d)
    return before, kept, table


def _near(before: pd.DataFrame, regions: np.ndarray, kept_peak: pd.Series, d: int) -> pd.Series:
    """The brightest kept piece within ``d`` px (steps of a cross) of each dropped piece."""
    out: dict[int, float] = {}
    kept = kept_peak.notna()
    for (t, z), part in before.groupby(["t", "z"]):
        lab = regions[int(t), int(z)]
        piece = np.zeros(int(lab.max()) + 1, np.int64)
        piece[part["label"].to_numpy()] = part["before"].to_numpy() + 1
        owner = piece[lab] - 1  # -1 on the background
        is_kept = kept.reindex(np.arange(int(owner.max()) + 1), fill_value=False).to_numpy()
        boxes = ndi.find_objects(lab)
        for row in part[~part["before"].map(kept)].itertuples():
            box = tuple(slice(max(s.start - d, 0), s.stop + d) for s in boxes[row.label - 1])
            grown = ndi.binary_dilation(lab[box] == row.label, iterations=d)
            near = owner[box][grown]
            near = np.unique(near[(near >= 0)])
            near = near[is_kept[near]]
            if near.size:
                best = float(kept_peak[near].max())
                out[row.before] = max(out.get(row.before, best), best)
    return pd.Series(out, dtype=float)


def taken(table: pd.DataFrame, rule) -> pd.Index:
    """The dropped pieces that ``rule`` (a value of :data:`RULES`) keeps."""
    reference, ratio, fraction, inside, near = rule
    dropped = table[~table["kept"]]
    keep = dropped["radius"] >= fraction
    if inside:
        keep &= dropped["inside"]
    if near is not None:
        keep &= dropped[f"near_{near}"].notna()
    if reference == "median":
        keep &= dropped["ratio"] >= ratio
    else:
        keep &= dropped["peak"] >= ratio * dropped[f"near_{near}"]
    return dropped.index[keep.to_numpy()]


def nuclei(measured, scale, rule) -> pd.DataFrame:
    """The nuclei table with the pieces that ``rule`` keeps (None: the default's own)."""
    before, kept, table = measured
    if rule is None:
        return bigseg.nuclei_table(kept, scale=scale)
    extra = before[before["before"].isin(taken(table, rule))]
    extra = extra.assign(nucleus=extra["before"] + 10**9).drop(columns="peak")
    return bigseg.nuclei_table(pd.concat([kept, extra], ignore_index=True), scale=scale)


def scores(cases) -> pd.DataFrame:
    """F1 per case (``name, image, truth, scale``) for the default and each rule."""
    rows = []
    for name, image, truth, scale in cases:
        measured = pieces(image, scale)
        row = {"case": name, "default": grid.scored(nuclei(measured, scale, None), truth)[0].f1}
        for rule_name, rule in RULES.items():
            row[rule_name] = grid.scored(nuclei(measured, scale, rule), truth)[0].f1
        rows.append(row)
        print(name, f"{row['default']:.3f}", flush=True)
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame, rules=RULES) -> pd.DataFrame:
    """Mean F1, cells under 0.95, worst, and cells higher and lower than the default."""
    cols = ["default", *rules]
    base = table["default"]
    return pd.DataFrame(
        {
            "mean F1": table[cols].mean(),
            "under 0.95": (table[cols] < 0.95).sum(),
            "worst": table[cols].min(),
            "higher": [(table[c] > base + 1e-9).sum() for c in cols],
            "lower": [(table[c] < base - 1e-9).sum() for c in cols],
        }
    )


#: ``name: (X, A)`` for 2D images (``--planar``): a dropped piece is kept when its peak is
#: at least ``X`` times the median peak of its time point's kept nuclei and its area at
#: least a disc of ``A`` times ``min_radius``.  Pieces under :data:`bigseg.kernels.
#: watershed`'s per-plane size (half ``min_radius``) never reach the filter.
PLANAR_RULES = {
    f"median {x:g} / {a:g}": (x, a) for x in (0.3, 0.4, 0.5, 0.6, 0.8) for a in (0.55, 0.65)
}


def planar_scores(cases) -> pd.DataFrame:
    """F1 per 2D case for the default and each of :data:`PLANAR_RULES`."""
    params = bigseg.Params()
    rows = []
    for name, image, truth, scale in cases:
        det = grid.detections(image, scale, params)[3]
        before, kept = grid._linked_before_and_after(det, params, scale, True)
        by = before.groupby("before")
        table = pd.DataFrame({"t": by["t"].first(), "peak": by[PEAK].max()})
        table["kept"] = table.index.isin(set(kept["before"]))
        table["radius"] = np.sqrt(by["area_um2"].sum() / np.pi) / MIN_R
        table["ratio"] = table["peak"] / table["t"].map(
            table[table["kept"]].groupby("t")["peak"].median()
        )
        row = {"case": name}
        for rule_name, (x, a) in {"default": (np.inf, 0.0), **PLANAR_RULES}.items():
            dropped = table[~table["kept"]]
            taken = dropped.index[(dropped["ratio"] >= x) & (dropped["radius"] >= a)]
            extra = before[before["before"].isin(taken)]
            extra = extra.assign(nucleus=extra["before"] + 10**9)
            found = bigseg.nuclei_table(
                pd.concat([kept, extra], ignore_index=True), scale=scale, planar=True
            )
            row[rule_name] = grid.scored(found, truth)[0].f1
        rows.append(row)
        print(name, f"{row['default']:.3f}", flush=True)
    return pd.DataFrame(rows)


def planar_cases(seeds, kinds: bool):
    """The 2D cells of the matrix for ``seeds``, or (``kinds``) the HeLa-like time-lapses."""
    if kinds:
        for seed in seeds:
            yield (f"hela2d {seed}", *synth_kind("hela2d", seed=seed))
        return
    for size, offset, touching, seed in itertools.product(
        grid.RADII, grid.OFFSETS, grid.TOUCHING, seeds
    ):
        image, truth, scale = grid.case("2d", size, offset, touching, seed)
        yield f"{size} {offset:g} {touching:g} {seed}", image, truth, scale


def matrix_cases(seeds):
    """The 3D cells of the matrix for ``seeds``."""
    for size, offset, touching, seed in itertools.product(
        grid.RADII, grid.OFFSETS, grid.TOUCHING, seeds
    ):
        image, truth, scale = grid.case("3d", size, offset, touching, seed)
        yield f"{size} {offset:g} {touching:g} {seed}", image, truth, scale


def kind_cases(seeds):
    """The named 3D kinds (``bigseg synth --kind heldout3d | series``) for ``seeds``."""
    for kind, seed in itertools.product(("heldout3d", "series"), seeds):
        image, truth, scale = synth_kind(kind, seed=seed)
        yield f"{kind} {seed}", image, truth, scale


def lost(seeds) -> None:
    """How near a kept nucleus the dropped pieces that are missed true nuclei lie."""
    rows = []
    for _, image, truth, scale in matrix_cases(seeds):
        measured = pieces(image, scale)
        before, kept, table = measured
        found = match(bigseg.nuclei_table(kept, scale=scale), truth)["truth"]
        missed = truth.drop(index=found.to_numpy()).reset_index(drop=True)
        dropped = table[~table["kept"] & (table["radius"] >= 0.7)]
        for i in dropped.index:
            one = bigseg.nuclei_table(before[before["before"] == i].assign(nucleus=1), scale=scale)
            row = dropped.loc[i].to_dict()
            rows.append({**row, "missed nucleus": len(match(one, missed)) > 0})
    table = pd.DataFrame(rows)
    print(table.groupby("missed nucleus").size().to_string())
    true = table[table["missed nucleus"]]
    for d in NEAR:
        share = true[f"near_{d}"].notna().mean()
        print(f"missed nuclei's pieces within {d} px of a kept nucleus: {share:.2f}")
    quartiles = true["ratio"].quantile([0.25, 0.5, 0.75]).round(3).tolist()
    planes = (true["high"] - true["low"] + 1).value_counts().sort_index().to_dict()
    print("their peak over the median, quartiles:", quartiles)
    floors = true["floors"].quantile([0.25, 0.5, 0.75]).round(2).tolist()
    print("their peak over the floor, quartiles:", floors)
    for x in (2.0, 3.0, 4.0):
        print(f"  share above {x:g} floors: {(true['floors'] > x).mean():.2f}")
    print(f"inside: {true['inside'].mean():.2f}; planes: {planes}")


def real(show_pieces: bool) -> None:
    """The real stacks' counts (and F1 where they have a truth table) for each rule."""
    rows = {}
    for name, load in _datasets.REAL.items():
        image, scale, truth = load()
        image = np.asarray(image)
        image = image[None] if image.ndim == 3 else image
        measured = pieces(image, scale)
        for rule_name, rule in {"default": None, **RULES}.items():
            found = nuclei(measured, scale, rule)
            text = f"{len(found)}"
            if isinstance(truth, pd.DataFrame):
                text += f" (F1 {bigseg.score(found, truth).f1:.3f})"
            rows.setdefault(rule_name, {})[name] = text
        if show_pieces:
            dropped = measured[2][~measured[2]["kept"]].drop(columns="kept")
            print(f"\n{name}: dropped pieces, brightest against the median first")
            print(dropped.sort_values("ratio", ascending=False).head(8).round(3).to_string())
    print(pd.DataFrame(rows).T.to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", action="store_true", help="the named kinds, not the matrix")
    parser.add_argument("--real", action="store_true", help="the real stacks' counts per rule")
    parser.add_argument(
        "--pieces", action="store_true", help="with --real: the dropped pieces, brightest first"
    )
    parser.add_argument("--lost", action="store_true", help="the nuclei each rule loses")
    parser.add_argument("--planar", action="store_true", help="the 2D cells' rules")
    grid.add_seeds(parser, (0, 1))
    args = parser.parse_args()
    seeds = grid.seeds_of(args.seeds, (0, 1))
    pd.set_option("display.width", 200)
    if args.lost:
        lost(seeds)
    elif args.planar:
        table = planar_scores(planar_cases(seeds, args.kinds))
        print(summary(table, PLANAR_RULES).round(4).to_string())
    elif args.real or args.pieces:
        real(args.pieces)
    else:
        cases = kind_cases(seeds) if args.kinds else matrix_cases(seeds)
        table = scores(cases)
        if args.kinds:
            table["kind"] = table["case"].str.split().str[0]
            print(table.groupby("kind")[["default", *RULES]].mean().T.round(4).to_string())
        print(summary(table).round(4).to_string())


if __name__ == "__main__":
    main()
