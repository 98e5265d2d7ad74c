import numpy as np
import pandas as pd
import pytest

from bigseg.cluster import (
    NUCLEUS_COLUMNS,
    drop_small,
    link,
    link_pairs,
    nuclei_table,
    split_at_drift,
    split_at_necks,
)


def _detections(rows):
    """rows: (t, z, y_um, x_um, radius_um, intensity_sum)."""
    df = pd.DataFrame(rows, columns=["t", "z", "y_um", "x_um", "radius_um", "intensity_sum"])
    df["y"], df["x"] = df["y_um"], df["x_um"]
    df["z_um"] = df["z"] * 2.0
    df["area_px"] = (np.pi * df["radius_um"] ** 2).round().astype(int)
    df["label"] = 1
    return df


def _column(z_range, y, x, r=5.0, t=0, w=100.0):
    return [(t, z, y, x, r, w) for z in z_range]


def test_touching_nuclei_stay_apart():
    # Two nuclei of radius 5 touching at x = 10: the recipe's single linkage merged these.
    rows = _column(range(0, 6), 0.0, 5.0) + _column(range(0, 6), 0.0, 15.0)
    linked = link(_detections(rows))
    assert linked["nucleus"].nunique() == 2


def test_chain_of_neighbours_is_not_merged():
    rows = []
    for i in range(10):
        rows += _column(range(0, 5), 0.0, 9.0 * i)
    assert link(_detections(rows))["nucleus"].nunique() == 10


def test_one_plane_gap_is_bridged_but_not_two():
    one_gap = _column([0, 1, 2, 4, 5], 0, 0)
    assert link(_detections(one_gap))["nucleus"].nunique() == 1
    two_gap = _column([0, 1, 2, 5, 6], 0, 0)
    assert link(_detections(two_gap))["nucleus"].nunique() == 2


def test_time_points_never_link():
    rows = _column(range(3), 0, 0, t=0) + _column(range(3), 0, 0, t=1)
    linked = link(_detections(rows))
    assert linked.groupby("t")["nucleus"].nunique().tolist() == [1, 1]
    assert linked["nucleus"].nunique() == 2


def test_each_detection_links_once_per_plane_pair():
    # A big detection above two small ones: it keeps only the nearer one.
    rows = [(0, 0, 0.0, 0.0, 8.0, 1.0), (0, 1, 0.0, 1.0, 3.0, 1.0), (0, 1, 0.0, -3.0, 3.0, 1.0)]
    pairs = link_pairs(_detections(rows))
    assert pairs.tolist() == [[0, 1]]


def test_nuclei_table_weighted_centre_and_volume():
    rows = [(0, 0, 0.0, 0.0, 5.0, 100.0), (0, 1, 2.0, 0.0, 5.0, 300.0)]
    linked = link(_detections(rows))
    nuclei = nuclei_table(linked, scale=(2.0, 1.0, 1.0))
    assert list(nuclei.columns) == list(NUCLEUS_COLUMNS)
    row = nuclei.iloc[0]
    assert row["y_um"] == pytest.approx(1.5) and row["z"] == pytest.approx(0.75)
    assert row["n_planes"] == 2
    assert row["volume_um3"] == pytest.approx(linked["area_px"].sum() * 2.0)
    assert row["intensity_sum"] == pytest.approx(400.0)


def test_empty_inputs():
    empty = _detections([])
    assert len(link(empty)) == 0 and "nucleus" in link(empty)
    assert list(nuclei_table(link(empty), scale=(1, 1, 1)).columns) == list(NUCLEUS_COLUMNS)


def test_many_detections_link_without_quadratic_memory():
    # 200 000 detections: 20 000 nuclei of 10 planes on a grid; a dense distance
    # matrix would need 320 GB.
    rng = np.random.default_rng(0)
    n = 20_000
    side = int(np.ceil(np.sqrt(n)))
    grid = np.stack(np.divmod(np.arange(n), side), axis=1) * 15.0
    rows = np.repeat(grid, 10, axis=0) + rng.normal(0, 0.3, (n * 10, 2))
    z = np.tile(np.arange(10), n)
    df = _detections([(0, zz, y, x, 5.0, 1.0) for zz, (y, x) in zip(z, rows)])
    assert link(df)["nucleus"].nunique() == n


def test_nuclei_stacked_in_z_are_split_at_the_neck():
    # Two spheres of radius 5 touching in z at the same (y, x): one chain after linking.
    rows = []
    for centre in (5.0, 15.0):
        for z in range(int(centre) - 4, int(centre) + 5):
            r = np.sqrt(max(25 - (z - centre) ** 2, 1.0))
            rows.append((0, z, 0.0, 0.0, r, 100 * r**2))
    det = _detections(rows)
    assert link(det)["nucleus"].nunique() == 1
    linked = link(det, neck_ratio=0.7)
    assert linked["nucleus"].nunique() == 2
    assert linked.groupby("nucleus")["z"].agg(["min", "max"]).values.tolist() == [[1, 9], [11, 19]]


def test_one_nucleus_is_never_split():
    rows = [(0, z, 0.0, 0.0, np.sqrt(max(36 - (z - 6) ** 2, 1)), 1.0) for z in range(13)]
    det = _detections(rows)
    det["intensity_sum"] = det["radius_um"] ** 2
    assert link(det, neck_ratio=0.9)["nucleus"].nunique() == 1


def test_split_at_necks_vectorised_over_components():
    z = np.array([0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4], float)
    w = np.array([1, 5, 5, 0.5, 5, 5, 1, 1, 5, 6, 5, 1], float)
    comp = np.array([0] * 7 + [1] * 5)
    out = split_at_necks(comp, z, w, neck_ratio=0.5)
    assert len(set(out[:3])) == 1 and len(set(out[4:7])) == 1 and out[0] != out[5]
    assert len(set(out[7:])) == 1 and out[7] == 1
    assert split_at_necks(np.zeros(0, int), np.zeros(0), np.zeros(0), neck_ratio=0.5).size == 0


def test_split_at_drift_cuts_where_the_centres_step_sideways_and_not_a_tilted_nucleus():
    # Component 0: four planes centred at x = 0, four at x = 3.5 (radius 3.5: two nuclei
    # touching along z, offset sideways).  Component 1: one tilted nucleus whose centres
    # move 0.25 µm per plane.  Component 2: the step of component 0, but its upper part
    # sums less than min_area (a cap, not a nucleus).
    z = np.arange(8.0)
    area = np.full(8, np.pi * 3.5**2)
    x0 = np.where(z < 4, 0.0, 3.5)
    x1 = 0.25 * z
    x2 = np.where(z < 6, 0.0, 3.5)
    comp = np.repeat([0, 1, 2], 8)
    out = split_at_drift(
        comp, np.tile(z, 3), np.zeros(24), np.concatenate([x0, x1, x2]), np.tile(area, 3),
        ratio=0.8, min_area=3 * area[0],
    )  # fmt: skip
    assert len(set(out[:4])) == 1 and len(set(out[4:8])) == 1 and out[0] != out[4]
    assert len(set(out[8:16])) == 1 and out[8] == 1
    assert len(set(out[16:])) == 1 and out[16] == 2
    # A flat nucleus tilted far out of the planes: its centres move 1.2 µm per plane (the
    # sides' centres 4.8 µm apart, 1.4 radii), but along a straight line.
    ramp = 1.2 * z + np.array([0.05, -0.05] * 4)
    out = split_at_drift(
        np.zeros(8, int), z, np.zeros(8), ramp, area, ratio=0.8, min_area=3 * area[0]
    )
    assert (out == 0).all()
    empty = np.zeros(0)
    assert split_at_drift(np.zeros(0, int), empty, empty, empty, empty, ratio=0.8).size == 0


def test_drop_small_removes_fragments_and_renumbers():
    rows = _column(range(0, 6), 0.0, 0.0, r=5.0) + [(0, 3, 0.0, 40.0, 3.0, 1.0)]
    rows += _column(range(0, 6), 0.0, 80.0, r=5.0)
    det = _detections(rows)
    det["area_um2"] = det["area_px"] * 1.0  # 1 µm pixels
    linked = link(det)
    assert linked["nucleus"].nunique() == 3
    kept = drop_small(linked, scale=(2.0, 1.0, 1.0), min_radius=3.0)
    assert sorted(kept["nucleus"].unique()) == [1, 2]
    assert set(kept["x_um"].round()) == {0.0, 80.0}
    assert len(drop_small(linked.iloc[:0], scale=(1, 1, 1), min_radius=1.0)) == 0


def test_link_splits_chains_at_a_neck_in_area():
    # Two nuclei stacked in z whose contact blur fills with light (the same integrated
    # intensity in every plane) but whose cross-sections narrow where they meet.
    radii = [3.0, 4.0, 5.0, 4.5, 3.5, 4.5, 5.0, 4.0, 3.0]
    rows = [(0, z, 0.0, 0.0, r, 100.0) for z, r in enumerate(radii)]
    det = _detections(rows)
    assert link(det)["nucleus"].nunique() == 1  # no neck splitting asked for
    assert link(det, neck_ratio=0.7)["nucleus"].tolist() == [1] * 5 + [2] * 4
    # One nucleus: its area rises and falls once.
    one = _detections([(0, z, 0.0, 0.0, r, 100.0) for z, r in enumerate(sorted(radii)[::2])])
    assert link(one, neck_ratio=0.7)["nucleus"].nunique() == 1


def test_drop_small_keeps_nuclei_cut_by_the_stacks_faces():
    # The same small nucleus (0.7 of the sphere) in the first planes of the time point's
    # detections, where the stack's face may cut it, and in the middle planes.
    rows = _column(range(0, 10), 0.0, 0.0, r=5.0)
    rows += _column(range(0, 3), 0.0, 40.0, r=1.9) + _column(range(4, 7), 0.0, 80.0, r=1.9)
    det = _detections(rows)
    det["area_um2"] = det["area_px"] * 1.0  # 1 µm pixels
    linked = link(det)
    assert linked["nucleus"].nunique() == 3
    kept = drop_small(linked, scale=(2.0, 1.0, 1.0), min_radius=3.0)
    assert set(kept["x_um"].round()) == {0.0, 40.0}


def test_drop_small_asks_half_the_z_extent_of_nuclei_cut_by_the_top_or_bottom_only():
    # A nucleus of two planes spans half the z extent asked (4 planes of 1 µm): kept in the
    # first or last planes of the time point (the stack's faces cut it) but not in the
    # middle, nor in a first plane at a side of the stack in y or x (a corner's piece).
    rows = _column(range(0, 10), 60.0, 60.0, r=5.0)  # reaches furthest: the far sides
    rows += _column(range(0, 2), 30.0, 20.0, r=4.0)  # bottom face
    rows += _column(range(8, 10), 30.0, 40.0, r=4.0)  # top face
    rows += _column(range(4, 6), 30.0, 30.0, r=4.0)  # middle
    rows += _column(range(0, 2), 2.0, 40.0, r=4.0)  # bottom face, at the side y = 0
    rows += _column(range(0, 2), 30.0, 62.0, r=4.0)  # bottom face, at the far side in x
    det = _detections(rows)
    det["area_um2"] = det["area_px"] * 1.0  # 1 µm pixels
    linked = link(det)
    assert linked["nucleus"].nunique() == 6
    kept = drop_small(linked, scale=(1.0, 1.0, 1.0), min_radius=3.0)
    centres = set(zip(kept["y_um"].round(), kept["x_um"].round()))
    assert centres == {(60.0, 60.0), (30.0, 20.0), (30.0, 40.0)}


def test_link_and_nuclei_table_refuse_a_lazy_table_in_one_sentence():
    import dask.dataframe as dd

    from bigseg import InputError

    table = _detections(_column(range(0, 3), 0.0, 0.0))
    lazy = dd.from_pandas(table, npartitions=1)
    with pytest.raises(InputError, match=r"link\(\) takes detections as a pandas DataFrame, "
                       r"not a dask.DataFrame \(call .compute\(\) on it first\)"):  # fmt: skip
        link(lazy)
    with pytest.raises(InputError, match=r"nuclei_table\(\) takes linked"):
        nuclei_table(lazy, scale=(1.0, 1.0, 1.0))
    assert link(lazy.compute())["nucleus"].nunique() == 1


def test_drop_small_keeps_small_bright_pieces_inside_the_stack():
    # Three nuclei (planes 0-9, peak 100: the median) and pieces drop_small drops by their
    # size or z extent (1 µm voxels, min_radius 3 µm: a sphere of 0.95 x 3 µm is 97 µm³,
    # one of BRIGHT_FRACTION x 3 µm 48 µm³).
    from bigseg.cluster import BRIGHT_FRACTION, BRIGHT_PEAK, kept_peaks, peak_medians, take_bright
    from bigseg.tables import PEAK

    assert (BRIGHT_PEAK, BRIGHT_FRACTION) == (0.4, 0.75)
    pieces = {  # name: (planes, x, radius, peak)
        "inside, bright": (range(4, 7), 100.0, 2.5, 50.0),  # 3 x 20 µm²: 60 µm³
        "inside, dim": (range(4, 7), 130.0, 2.5, 30.0),
        "inside, bright, too small": (range(4, 7), 160.0, 1.9, 50.0),  # 33 µm³
        "one plane inside, bright": (range(5, 6), 190.0, 4.0, 50.0),  # 50 µm³
        "one plane at the face, bright": (range(0, 1), 220.0, 4.0, 50.0),
    }
    rows, peaks = [], []
    for x in (0.0, 30.0, 60.0):
        rows += _column(range(0, 10), 30.0, x, r=5.0)
        peaks += [100.0] * 10
    for planes, x, r, peak in pieces.values():
        rows += _column(planes, 30.0, x, r=r)
        peaks += [peak] * len(planes)
    det = _detections(rows)
    det["area_um2"] = det["area_px"] * 1.0
    # the largest of a nucleus's planes is its peak: the others lower
    det[PEAK] = np.asarray(peaks) * np.where(det["z"] % 2 == 0, 1.0, 0.9)
    linked = link(det)
    assert linked["nucleus"].nunique() == 8
    scale = (1.0, 1.0, 1.0)
    kept = drop_small(linked, scale=scale, min_radius=3.0)
    assert set(kept["x_um"].round()) == {0.0, 30.0, 60.0, 100.0, 190.0}
    assert kept["nucleus"].max() == 5
    # without the column (a seed run, bigseg.measure's table): as before
    plain = drop_small(linked.drop(columns=PEAK), scale=scale, min_radius=3.0)
    assert set(plain["x_um"].round()) == {0.0, 30.0, 60.0}
    # in 2D nothing changes: an area against a disc, no peak
    flat = linked[linked["z"] == 5].assign(z=0.0)
    pd.testing.assert_frame_equal(
        drop_small(flat, scale=scale, min_radius=3.0, planar=True).drop(columns=PEAK),
        drop_small(flat.drop(columns=PEAK), scale=scale, min_radius=3.0, planar=True),
    )
    # a part of a time point passes the pieces on, and the median of every part's kept
    # nuclei decides: the same rows
    marked = drop_small(linked, scale=scale, min_radius=3.0, candidates=True)
    assert set(marked.loc[marked["_candidate"], "x_um"].round()) == {100.0, 130.0, 190.0}
    medians = peak_medians(kept_peaks(marked))
    assert medians.to_dict() == {0.0: 100.0}
    taken = take_bright(marked, medians)
    cols = ["t", "z", "x_um", "area_px"]
    pd.testing.assert_frame_equal(
        taken[cols].sort_values(cols, ignore_index=True),
        kept[cols].sort_values(cols, ignore_index=True),
    )
