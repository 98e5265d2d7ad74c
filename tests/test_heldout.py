"""The failure classes of issue 14, each on data of :mod:`bigseg.synth` that nothing was tuned to.

Camera offsets, nuclei barely above ``min_radius``, touching nuclei of unequal brightness,
2D time-lapses and a sample of the synthetic matrix of ``bench/grid.py``; and a real dense
2D image with truth, StarDist's, once ``make real-2d`` has fetched it.  The default method
runs with its defaults, the voxel size its only option.
"""

import itertools

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy import ndimage

import bigseg
from bigseg.measure import measure
from bigseg.score import match
from bigseg.segment import segment_whole_planes
from bigseg.stack import as_stack
from bigseg.synth import make_truth, render, synth_kind, visible_centres

SCALE = (1.5, 0.71, 0.71)
MIN_R = bigseg.Params().min_radius


def _nuclei(image: np.ndarray, scale, params: bigseg.Params | None = None) -> pd.DataFrame:
    """Threshold, segment, measure and link a ``(t, z, y, x)`` array as ``run`` does."""
    params = params or bigseg.Params()
    stack = as_stack(image, scale=scale, dims=("t", "z", "y", "x")).chunk({"t": 1, "z": 8})
    planar = image.shape[1] == 1
    thresholds = bigseg.global_threshold(stack, params=params).compute().values
    labels, peak = segment_whole_planes(stack, params=params, threshold=thresholds)
    linked = bigseg.link(
        measure(labels, stack, peak).compute(), params=params, scale=scale, planar=planar
    )
    return bigseg.nuclei_table(linked, scale=scale, planar=planar)


def _small_touching_cell(shape, *, t):
    """Return bench/grid.py's cell of small nuclei, a quarter touching, offset 30 000, seed 3.

    Radii 1.1-1.6 x min_radius, with autofluorescence, uneven light and texture.
    """
    return _case(
        shape, 80, t=t, seed=3, radius_um=(1.1 * MIN_R, 1.6 * MIN_R), touching=0.25,
        texture=0.1, read_noise=15.0, offset=30000.0, max_value=65535, autofluorescence=150.0,
        illumination=0.3,
    )  # fmt: skip


def _case(shape, nuclei, *, t=1, seed=0, radius_um=(4.0, 7.0), touching=0.0, **render_options):
    truth = make_truth(
        shape, nuclei, scale=SCALE, t=t, seed=seed, radius_um=radius_um, touching=touching,
        brightness=(300.0, 3000.0), brightness_spread=10.0,
    )  # fmt: skip
    image = render(truth, (0, 0, 0, 0), (t, *shape), scale=SCALE, noise_seed=seed, **render_options)
    return image, truth


def test_a_camera_offset_of_30000_keeps_recall():
    # The 2D time-lapse: Otsu of log(intensity) with the offset in put a third of
    # the nuclei under the floor.  The same nuclei with and without the offset.
    scores = {}
    for offset in (0.0, 30000.0):
        image, truth = _case(
            (1, 160, 160), 30, seed=4, offset=offset, max_value=65535, autofluorescence=100.0,
            illumination=0.2,
        )  # fmt: skip
        scores[offset] = bigseg.score(_nuclei(image, SCALE), truth)
    assert scores[30000.0].recall >= 0.9 and scores[30000.0].precision >= 0.95, scores
    assert abs(scores[30000.0].recall - scores[0.0].recall) <= 0.05, scores


def test_nuclei_just_above_min_radius_are_found():
    # 1.1-1.3 x min_radius: their half-maximum planes are smaller than min_radius, and
    # their volume at the half maximum smaller than a sphere of it.
    # Before issue 14: recall 0.53 on bench/grid.py's 1.1-1.6 x cell; here 0.80 (the
    # issue's 0.95 is not reached for the smallest nuclei).
    image, truth = _case((16, 128, 128), 25, seed=6, radius_um=(1.1 * MIN_R, 1.3 * MIN_R))
    s = bigseg.score(_nuclei(image, SCALE), truth)
    assert s.recall >= 0.75 and s.precision >= 0.95 and s.mean_error_um <= 1.0, s


def test_small_nuclei_well_above_the_floor_are_measured_at_their_own_half_maximum_in_3d():
    # 3D, 1.1-1.3 x min_radius, brightness over tenfold: a small nucleus cut from three
    # quarters of the floor (not at half its own peak) measured under the smallest sphere
    # or its z extent and was dropped as a fragment.  Before the local threshold's base fell
    # at bright peaks: recall 0.833, 0.900, 0.900 on these seeds (0.878 pooled); after 0.933,
    # 0.967, 0.933 (0.944).
    matched = found = true = 0
    for seed in (0, 4, 5):
        image, truth = _case(
            (24, 128, 128), 30, seed=seed, radius_um=(1.1 * MIN_R, 1.3 * MIN_R), texture=0.1,
            read_noise=15.0,
        )  # fmt: skip
        s = bigseg.score(_nuclei(image, SCALE), truth)
        assert s.mean_error_um <= 1.0, s
        matched, found, true = matched + s.matched, found + s.n_found, true + s.n_true
    assert matched / true >= 0.93 and matched / found >= 0.98, (matched, found, true)


def test_small_nuclei_cut_by_the_stacks_top_or_bottom_are_kept():
    # 1.1-1.3 x min_radius, centred within half a µm of the first or last plane: the stack
    # shows two planes of each, half the z extent a whole one shows.  Before half of it was
    # asked there: recall 0.40; after 0.92.  Their true centres lie at the faces, so the
    # centre error is measured against what the stack shows of each (0.65 µm against the
    # true centres, 0.50 against the visible parts).
    rng = np.random.default_rng(3)
    nz, rows = 20, []
    for i, j in itertools.product(range(5), repeat=2):
        r = MIN_R * rng.uniform(1.1, 1.3)
        z = (nz - 1) * 1.5 - rng.uniform(-0.3, 0.5) if (i + j) % 2 else rng.uniform(-0.3, 0.5)
        y, x = 12 + 16 * i + rng.uniform(-1, 1), 12 + 16 * j + rng.uniform(-1, 1)
        rows.append((0, z, y, x, r, rng.uniform(800, 2500)))
    truth = pd.DataFrame(rows, columns=["t", "z_um", "y_um", "x_um", "r_um", "brightness"])
    shape = (nz, 128, 128)
    image = render(
        truth, (0, 0, 0, 0), (1, *shape), scale=SCALE, noise_seed=3, read_noise=15.0,
        texture=0.1,
    )  # fmt: skip
    found = _nuclei(image, SCALE)
    s = bigseg.score(found, truth)
    assert s.recall >= 0.9 and s.precision == 1.0, s
    seen = bigseg.score(found, visible_centres(truth, shape, scale=SCALE))
    assert seen.matched == s.matched and seen.mean_error_um < min(0.6, s.mean_error_um), seen


def test_dim_small_nuclei_of_a_2d_time_lapse_are_cut_at_their_own_level():
    # 2D, 1.1-1.4 x min_radius, brightness over tenfold, offset and uneven light: a dim
    # nucleus cut at the floor (not at its own level) came out smaller than the smallest
    # disc and was dropped.  Before: recall 0.91, 0.82 of the dimmer half; after 0.99, 0.97.
    truth = make_truth(
        (1, 200, 200), 40, scale=SCALE, t=2, seed=1, radius_um=(1.1 * MIN_R, 1.4 * MIN_R),
        brightness=(250.0, 2500.0), brightness_spread=10.0,
    )  # fmt: skip
    image = render(
        truth, (0, 0, 0, 0), (2, 1, 200, 200), scale=SCALE, noise_seed=1, texture=0.1,
        read_noise=15.0, offset=30000.0, max_value=65535, autofluorescence=150.0,
        illumination=0.3,
    )  # fmt: skip
    found = _nuclei(image, SCALE)
    s = bigseg.score(found, truth)
    hit = np.zeros(len(truth), bool)
    hit[match(found, truth)["truth"].to_numpy()] = True
    dim = (truth["brightness"] < truth["brightness"].median()).to_numpy()
    assert s.recall >= 0.95 and s.precision >= 0.98 and s.mean_error_um <= 1.0, s
    assert hit[dim].mean() >= 0.9


def test_touching_nuclei_of_unequal_brightness_are_split():
    # Pairs of touching discs in one plane, one of each five times brighter than the other.
    # Smoothed, the dim one sits on the bright one's flank without a peak of its own, and
    # half the way to the largest value in its box cut it away: 6 of 10 found, then 8 since
    # 2D nuclei are cut at their own level.  A 2D image's regions are now cut at their own
    # peak where a brighter neighbour is in the box (methods.default.segment_planar_block).
    rows = []
    for i, (y, x) in enumerate([(30, 30), (30, 90), (90, 30), (90, 90), (60, 140)]):
        r1, r2 = 3.6 + 0.4 * (i % 3), 4.4 - 0.3 * (i % 2)
        angle = 0.7 * i
        y2 = y * 0.71 + (r1 + r2) * 0.97 * np.sin(angle)
        x2 = x * 0.71 + (r1 + r2) * 0.97 * np.cos(angle)
        rows += [(0, 0.0, y * 0.71, x * 0.71, r1, 2500.0), (0, 0.0, y2, x2, r2, 500.0)]
    truth = pd.DataFrame(rows, columns=["t", "z_um", "y_um", "x_um", "r_um", "brightness"])
    image = render(truth, (0, 0, 0, 0), (1, 1, 130, 190), scale=SCALE, noise_seed=1)
    found = _nuclei(image, SCALE)
    s = bigseg.score(found, truth)
    assert s.matched == s.n_true == s.n_found == 10, s


def test_small_nuclei_of_3d_stacks_cut_to_a_few_planes_are_kept():
    # The matrix's worst 3D cell (bench/grid.py: small, offset 30 000, a quarter touching,
    # seed 3): nuclei of 1.1-1.6 x min_radius whose pieces span two or three planes.
    image, truth = _small_touching_cell((32, 192, 192), t=1)
    s = bigseg.score(_nuclei(image, SCALE), truth)
    assert s.recall >= 0.9 and s.precision >= 0.95, s


def test_dim_nuclei_on_a_bright_neighbours_flank_in_2d_are_found():
    # The matrix's worst 2D cell (bench/grid.py: small, offset 30 000, a quarter touching,
    # seed 3): most misses are nuclei dimmer than a touching neighbour, without a peak of
    # their own once smoothed.  Before a 2D image's regions were cut at their own peak
    # (methods.default.segment_planar_block): 144 of 160 found, 2 false (F1 0.941).
    image, truth = _small_touching_cell((1, 256, 256), t=2)
    s = bigseg.score(_nuclei(image, SCALE), truth)
    assert s.recall >= 0.92 and s.precision >= 0.98, s


def test_touching_nuclei_stacked_in_z_are_split():
    # StarDist's synthetic stack: nuclei of even brightness stacked in z, whose contact the
    # blur fills with light, so the integrated intensity has no neck; their area has one.
    # Before: 14 of 18 found (two pairs merged).
    rows = []
    for i, (y, x) in enumerate(itertools.product((12.0, 36.0, 60.0), repeat=2)):
        r1, r2 = 4.5 + 0.5 * (i % 3), 5.0 - 0.4 * (i % 2)
        z = 3.0 + r1
        rows += [(0, z, y, x, r1, 600.0), (0, z + r1 + r2, y + 0.5 * (i % 2), x, r2, 600.0)]
    truth = pd.DataFrame(rows, columns=["t", "z_um", "y_um", "x_um", "r_um", "brightness"])
    scale = (1.0, 1.0, 1.0)
    image = render(
        truth, (0, 0, 0, 0), (1, 28, 72, 72), scale=scale, noise_seed=1, edge_um=1.0,
        read_noise=20.0,
    )  # fmt: skip
    s = bigseg.score(_nuclei(image, scale), truth)
    assert s.matched == s.n_true == s.n_found == 18, s


def test_small_nuclei_touching_along_z_and_offset_sideways_are_split():
    # The false nuclei of the matrix's small touching 3D cells: two nuclei of like
    # brightness, one above the other and offset sideways, touch; the cross-sections of
    # the two merge plane by plane with no neck of area or intensity, but their centres
    # move from one nucleus to the other (cluster.split_at_drift).  Before: two pairs merged
    # (14 of 18 found, 2 false nuclei).
    rows = []
    for i, (y, x) in enumerate(itertools.product((18.0, 52.0, 86.0), repeat=2)):
        r1, r2 = 3.3 + 0.3 * (i % 3), 3.9 - 0.3 * (i % 2)
        tilt, turn = 0.4 + 0.07 * (i % 4), 0.8 * i  # from the z axis; around it
        side = (r1 + r2) * 0.97 * np.sin(tilt)
        rows += [
            (0, 14.0, y, x, r1, 1000.0),
            (0, 14.0 + (r1 + r2) * 0.97 * np.cos(tilt), y + side * np.sin(turn),
             x + side * np.cos(turn), r2, 1000.0 * (0.75 + 0.1 * (i % 5))),
        ]  # fmt: skip
    truth = pd.DataFrame(rows, columns=["t", "z_um", "y_um", "x_um", "r_um", "brightness"])
    image = render(
        truth, (0, 0, 0, 0), (1, 24, 148, 148), scale=SCALE, noise_seed=3, texture=0.1,
        read_noise=15.0,
    )  # fmt: skip
    s = bigseg.score(_nuclei(image, SCALE), truth)
    assert s.matched == s.n_true == s.n_found == 18, s


def test_small_nuclei_touching_side_by_side_in_2d_are_split():
    # The largest class of misses of the matrix's small touching 2D cells
    # (bench/grid.py --misses): two small nuclei of like brightness touching in the plane
    # show no valley of intensity (their edges add up to a full nucleus's light) and,
    # smoothed and cut at half their peak, a capsule without a waist, whose distance
    # peaks lie 0.7-1.1 times the sum of their distances apart (the plane's markers,
    # methods.default.MARKER_APART).  Before (0.9): 16 of 32 found, 8 false nuclei; at 0.8,
    # two pairs (0.71 and 0.77 apart) are still merged: 28 of 32, 2 false nuclei.
    rows = []
    for i, (y, x) in enumerate(itertools.product((16.0, 46.0, 76.0, 106.0), repeat=2)):
        r1, r2 = 3.15 + 0.15 * (i % 3), 3.5 - 0.15 * (i % 2)  # 1.1-1.3 x min_radius
        turn, apart = 0.45 * i, (r1 + r2) * 0.97
        rows += [
            (0, 0.0, y, x, r1, 1000.0),
            (0, 0.0, y + apart * np.sin(turn), x + apart * np.cos(turn), r2,
             1000.0 * (0.8 + 0.1 * (i % 5))),
        ]  # fmt: skip
    truth = pd.DataFrame(rows, columns=["t", "z_um", "y_um", "x_um", "r_um", "brightness"])
    image = render(
        truth, (0, 0, 0, 0), (1, 1, 176, 176), scale=SCALE, noise_seed=1, texture=0.1,
        read_noise=15.0,
    )  # fmt: skip
    s = bigseg.score(_nuclei(image, SCALE), truth)
    assert s.n_true == 32 and s.matched >= 28 and s.n_found - s.matched <= 2, s


@pytest.mark.parametrize("tilt", [0, 30, 60])
def test_flat_nuclei_tilted_out_of_the_planes_stay_whole(tilt):
    # An adherent cell's nucleus (20 x 14 x 5 µm) at a CHO-like voxel size, tilted about y:
    # the centres of its cross-sections move up to 1.9 µm per plane along a straight line,
    # as far as those of two nuclei stacked offset sideways (cluster.split_at_drift cut it
    # in two at 30° and more before RAMP_RATIO).
    scale = (1.0, 0.2, 0.2)
    shape = (36, 160, 180)
    z, y, x = np.meshgrid(
        *[(np.arange(n) - n / 2) * s for n, s in zip(shape, scale)], indexing="ij"
    )
    t = np.deg2rad(tilt)
    along, across = x * np.cos(t) + z * np.sin(t), z * np.cos(t) - x * np.sin(t)
    inside = (along / 10.0) ** 2 + (y / 7.0) ** 2 + (across / 2.5) ** 2 <= 1
    blurred = ndimage.gaussian_filter(inside * 1000.0, (0.8, 1.0, 1.0)) + 100
    image = np.random.default_rng(0).normal(blurred, 10).clip(0).astype(np.uint16)
    assert len(_nuclei(image[None], scale)) == 1


@pytest.mark.parametrize("kind", ["hela2d", "ovals2d"])
def test_dense_2d_time_lapse_of_round_and_oval_nuclei(kind):
    # The HeLa-like kind, round (bigseg synth --kind hela2d) and oval (aspect 1-2, as most
    # HeLa nuclei are: --kind ovals2d), on frames of 350 x 550 px.  Pooled over four seeds,
    # round: F1 0.996; oval: 0.986 (0.984 and 0.964 with peaks asked above the whole floor,
    # 0.963 before the concavity cut).  Nuclei under 110 grey levels above the background,
    # under Otsu's floor: 46 of 55 found (10 with the whole floor; docs/accuracy.md,
    # fourteenth round).
    counts, dim = np.zeros(3), np.zeros(2)
    for seed in range(4):
        image, truth, scale = synth_kind(kind, seed=seed, shape=(1, 350, 550), nuclei=70)
        found = _nuclei(image, scale)
        s = bigseg.score(found, truth)
        counts += (s.n_true, s.n_found, s.matched)
        faint = truth.index[truth["brightness"] < 110]
        dim += (len(faint), faint.isin(match(found, truth)["truth"]).sum())
    f1 = 2 * counts[2] / (counts[0] + counts[1])
    assert f1 >= 0.975, f1
    assert dim[1] >= 0.75 * dim[0], dim


@pytest.mark.parametrize("pixel", [0.4, 0.5, 0.65, 0.8])
def test_real_dense_2d_image_of_touching_oval_nuclei(pixel):
    # StarDist's 2D test image: real, dense HeLa-like nuclei from the 2018 Data Science Bowl,
    # many oval and touching, 125 labelled (`make real-2d` fetches it).  Its pixel size is not
    # stored: scored at four, with and without a camera offset of 30 000.  Touching ovals side
    # by side are cut at their outline's notches: F1 0.893, 0.931, 0.903 (0.895 with the
    # offset) and 0.914; without the cut 0.844, 0.881, 0.837 and 0.865 (docs/accuracy.md,
    # thirteenth round).
    from skimage.measure import regionprops_table

    from .conftest import cached_file

    image = tifffile.imread(cached_file("dsb2018_2d/img2d.tif"))
    mask = tifffile.imread(cached_file("dsb2018_2d/mask2d.tif"))
    p = regionprops_table(mask, properties=("centroid", "area"))
    truth = pd.DataFrame(
        {
            "z_um": 0.0,
            "y_um": p["centroid-0"] * pixel,
            "x_um": p["centroid-1"] * pixel,
            "r_um": np.sqrt(p["area"] / np.pi) * pixel,
        }
    )
    for offset in (0, 30000):
        shifted = (image.astype(np.int32) + offset).astype(np.uint16)
        s = bigseg.score(_nuclei(shifted[None, None], (1.0, pixel, pixel)), truth)
        assert s.f1 >= 0.885, (offset, s)


def test_2d_time_lapse_does_not_depend_on_the_z_size():
    image, _, scale = synth_kind("hela2d", seed=2, shape=(1, 200, 260), nuclei=20, t=2)
    tables = [_nuclei(image, (z, *scale[1:])) for z in (0.3, 1.0, 4.0)]
    assert len(tables[0]) > 10
    columns = [c for c in tables[0] if c not in ("z_um",)]  # z_um is z times the z size
    for other in tables[1:]:
        pd.testing.assert_frame_equal(other[columns], tables[0][columns])


#: Cells of bench/grid.py's matrix (its generator arguments, seed 0): radii 1.1-1.6, 1.6-3
#: and 3-12.8 µm / min_radius, offsets 0 and 30 000 (with autofluorescence and uneven light),
#: none or a quarter touching, 3D stacks and 2D time-lapses.
SAMPLE = [
    ("3d", "small", 30000.0, 0.25),
    ("3d", "large", 0.0, 0.25),
    ("2d", "medium", 30000.0, 0.25),
    ("2d", "small", 0.0, 0.0),
    ("2d", "large", 30000.0, 0.0),
]


def _grid_case(dims, radii, offset, touching):
    """bench/grid.py's ``case`` (kept in step with it)."""
    shape, t = {"3d": ((32, 192, 192), 1), "2d": ((1, 256, 256), 2)}[dims]
    lo, hi = {
        "small": (1.1 * MIN_R, 1.6 * MIN_R),
        "medium": (1.6 * MIN_R, 3.0 * MIN_R),
        "large": (3.0 * MIN_R, 0.9 * bigseg.Params().max_radius),
    }[radii]
    extent = np.array(shape) * np.array(SCALE)
    r = (lo + hi) / 2
    if dims == "3d":
        n = 0.06 * extent.prod() / (4 / 3 * np.pi * r**3)
    else:
        n = 0.15 * extent[1:].prod() / (np.pi * r**2)
    options = {"texture": 0.1, "read_noise": 15.0}
    if offset:
        options.update(offset=offset, max_value=65535, autofluorescence=150.0, illumination=0.3)
    return _case(
        shape, int(np.clip(n, 6, 80)), t=t, seed=0, radius_um=(lo, hi), touching=touching,
        **options,
    )  # fmt: skip


def test_a_sample_of_the_synthetic_matrix():
    # Pooled F1 >= 0.95 and centres within 1 µm over the sample, no cell below 0.9.
    matched = found = true = 0
    for cell in SAMPLE:
        image, truth = _grid_case(*cell)
        s = bigseg.score(_nuclei(image, SCALE), truth)
        assert s.f1 >= 0.9 and s.mean_error_um <= 1.0, (cell, s)
        matched, found, true = matched + s.matched, found + s.n_found, true + s.n_true
    assert 2 * matched / (found + true) >= 0.95


def test_a_stack_thinner_than_a_nucleus_keeps_its_nuclei():
    # Two planes of 1.5 µm are thinner than the z extent a whole nucleus shows (1.2x
    # min_radius): every nucleus is cut by the stack, and none may be dropped for it.
    image, truth = _case((2, 160, 160), 12, seed=5)
    found = _nuclei(image, SCALE)
    assert len(found) >= 0.8 * len(truth)


#: The background of ``synth_kind("hela2d")``, without nuclei, and one of noise alone.
HELA_BACKGROUND = dict(
    background=60.0, offset=33000.0, max_value=65535, autofluorescence=40.0, illumination=0.2,
    texture=0.15,
)  # fmt: skip
NOISE_BACKGROUND = dict(background=40.0, offset=400.0, max_value=65535, read_noise=10.0)


def _frame(shape, truth, scale, seed, background):
    return render(truth, (0, 0, 0, 0), (1, *shape), scale=scale, noise_seed=seed, **background)


def test_frames_without_nuclei_or_with_one_or_two_dim_ones_find_those_only():
    # A 2D time-lapse whose second frame is empty (noise, autofluorescence and uneven light
    # over a camera offset) and whose third holds one dim nucleus: Otsu split the noise
    # of both into hundreds of specks (532 and 363; 283 in the stack of noise below;
    # docs/accuracy.md, fifteenth round).
    scale, shape = (1.0, 0.71, 0.71), (1, 384, 384)
    dense = make_truth(
        shape, 60, scale=scale, seed=2, radius_um=(4.5, 8.5), brightness=(90.0, 1500.0),
        brightness_spread=10.0,
    )  # fmt: skip
    dim = make_truth(
        shape, 1, scale=scale, seed=2, radius_um=(4.5, 8.5), brightness=(90.0, 200.0),
        brightness_spread=1.0,
    ).iloc[:1]  # fmt: skip
    empty = dim.iloc[:0]
    frames = [
        _frame(shape, truth, scale, seed, HELA_BACKGROUND)
        for truth, seed in ((dense, 2), (empty, 0), (dim, 2))
    ]
    found = _nuclei(np.concatenate(frames), scale)
    per_t = found.groupby("t").size().reindex(range(3), fill_value=0)
    assert per_t[1] == 0 and per_t[2] == 1, per_t
    assert bigseg.score(found[found.t == 2], dim.assign(t=2)).f1 == 1.0
    alone = _nuclei(frames[0], scale)  # each frame's floor its own: the first as alone
    first = found[found.t == 0].reset_index(drop=True)
    pd.testing.assert_frame_equal(first[alone.columns], alone, check_dtype=False)
    assert bigseg.score(alone, dense).f1 >= 0.95
    # Stacks of 16 planes of noise: one empty, one of two dim nuclei (60-150 over 40).
    shape3 = (16, 128, 128)
    pair = make_truth(
        shape3, 2, scale=SCALE, seed=1, radius_um=(4.0, 7.0), brightness=(60.0, 150.0),
        brightness_spread=1.0,
    ).iloc[:2]  # fmt: skip
    stacks = [_frame(shape3, pair.iloc[:0], SCALE, 0, NOISE_BACKGROUND)]
    stacks.append(_frame(shape3, pair, SCALE, 1, NOISE_BACKGROUND))
    found = _nuclei(np.concatenate(stacks), SCALE)
    assert (found.t == 0).sum() == 0
    assert bigseg.score(found[found.t == 1], pair.assign(t=1)).f1 == 1.0


@pytest.mark.parametrize("sigma", [0.6, 1.0])
def test_an_8_bit_frame_of_a_grey_level_of_noise_finds_nothing(sigma):
    # A quarter of its neighbours are equal: the noise is still estimated (it was taken
    # for none, and the floor left in the noise: 679 and 647 found).
    frame = np.random.default_rng(0).normal(20, sigma, (1, 1, 384, 384)).round().astype(np.uint8)
    assert len(_nuclei(frame, (1.0, 0.71, 0.71))) == 0


def test_nuclei_of_low_contrast_over_noise_alone_are_all_found():
    # Nuclei 20-60 grey levels over a noise of about 12: far above the noise of the smoothed
    # signal (8 times it at Otsu's floor), though near the raw noise.  A noise rule taken in
    # raw noise units lost every one of the stacks' (docs/accuracy.md, fifteenth round).
    brightness = dict(brightness=(20.0, 60.0), brightness_spread=3.0)
    truth = make_truth((24, 160, 160), 30, scale=SCALE, seed=0, radius_um=(4.0, 7.0), **brightness)
    stack = _frame((24, 160, 160), truth, SCALE, 0, NOISE_BACKGROUND)
    assert bigseg.score(_nuclei(stack, SCALE), truth).f1 >= 0.95
    scale = (1.0, 0.71, 0.71)
    truth = make_truth((1, 384, 384), 40, scale=scale, seed=1, radius_um=(4.5, 8.5), **brightness)
    frame = _frame((1, 384, 384), truth, scale, 1, dict(NOISE_BACKGROUND, background=60.0))
    assert bigseg.score(_nuclei(frame, scale), truth).f1 >= 0.95
