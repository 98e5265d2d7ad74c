import numpy as np
import pandas as pd
import pytest

from bigseg import InputError, open_stack
from bigseg.synth import DIFFICULTY, make_truth, render, synth


def test_truth_is_reproducible_and_separated():
    a = make_truth((20, 100, 100), 12, seed=3)
    b = make_truth((20, 100, 100), 12, seed=3)
    pd.testing.assert_frame_equal(a, b)
    pts = a[["z_um", "y_um", "x_um"]].to_numpy()
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    rsum = a["r_um"].to_numpy()[:, None] + a["r_um"].to_numpy()[None]
    off = ~np.eye(len(a), dtype=bool)
    assert np.all(d[off] >= 1.1 * rsum[off] - 1e-9)
    np.testing.assert_allclose(a["x"] * 0.71, a["x_um"])


def test_render_blocks_tile_the_signal():
    truth = make_truth((6, 40, 40), 2, seed=1, radius_um=(4, 5))
    whole = render(truth, (0, 0, 0, 0), (1, 6, 40, 40), scale=(1.5, 0.71, 0.71), noise_seed=0)
    top = render(truth, (0, 0, 0, 0), (1, 3, 40, 40), scale=(1.5, 0.71, 0.71), noise_seed=0)
    bottom = render(truth, (0, 3, 0, 0), (1, 3, 40, 40), scale=(1.5, 0.71, 0.71), noise_seed=0)
    assert whole.dtype == np.uint16 and whole.max() <= 4095
    tiled = np.concatenate([top, bottom], axis=1).astype(float)
    # Same signal; only the per-block noise differs.
    assert np.abs(tiled - whole).mean() < 30


def test_synth_writes_ome_zarr_and_truth(tmp_path):
    image, truth = synth(tmp_path / "x.ome.zarr", shape=(4, 32, 32), nuclei=1, seed=0)
    assert truth.name == "x_truth.csv"
    stack = open_stack(image)
    assert stack.shape == (4, 32, 32) and stack.attrs["scale"]["y"] == pytest.approx(0.71)
    with pytest.raises(InputError, match="exists"):
        synth(image, shape=(4, 32, 32), nuclei=1)


def test_hard_options_make_touching_stacked_saturated_and_varied_nuclei():
    hard = DIFFICULTY["hard"]["truth"]
    truth = make_truth((40, 200, 200), 60, seed=0, **hard)
    pts = truth[["z_um", "y_um", "x_um"]].to_numpy()
    r = truth["r_um"].to_numpy()
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    ratio = d / (r[:, None] + r[None])
    np.fill_diagonal(ratio, np.inf)
    nearest = ratio.argmin(axis=1)
    touching = ratio.min(axis=1) < 1.0
    stacked = touching & (
        np.abs(pts[:, 0] - pts[nearest, 0]) > 0.9 * d[np.arange(len(pts)), nearest]
    )
    assert touching.sum() >= 10 and stacked.sum() >= 4
    assert ratio.min() >= 0.95 - 1e-9
    b = truth["brightness"]
    assert (b > 4095).sum() >= 1
    assert b[b <= 4095].max() / b.min() > 5


def test_default_difficulty_is_unchanged_and_unknown_refused(tmp_path):
    easy = make_truth((10, 64, 64), 5, seed=2)
    same = make_truth((10, 64, 64), 5, seed=2, touching=0.0, stacked=0.0, saturated=0.0)
    pd.testing.assert_frame_equal(easy, same)
    with pytest.raises(InputError, match="difficulty"):
        synth(tmp_path / "x.ome.zarr", shape=(4, 32, 32), nuclei=1, difficulty="nightmare")


def test_read_noise_option():
    truth = make_truth((4, 32, 32), 0, seed=0)
    quiet = render(truth, (0, 0, 0, 0), (1, 4, 32, 32), scale=(1.5, 0.71, 0.71), read_noise=0.0)
    loud = render(truth, (0, 0, 0, 0), (1, 4, 32, 32), scale=(1.5, 0.71, 0.71), read_noise=30.0)
    assert quiet.std() < loud.std()


def test_cli_difficulty_hard(tmp_path):
    from bigseg.cli import main

    image = tmp_path / "h.ome.zarr"
    args = ["synth", str(image), "--shape", "20", "96", "96", "--nuclei", "8", "--seed", "3"]
    assert main([*args, "--difficulty", "hard"]) == 0
    truth = pd.read_csv(tmp_path / "h_truth.csv")
    expected = make_truth((20, 96, 96), 8, seed=3, **DIFFICULTY["hard"]["truth"])
    pd.testing.assert_frame_equal(truth, expected, check_dtype=False)
    assert open_stack(image).shape == (20, 96, 96)


def test_cli_elongation_and_the_oval_kind(tmp_path):
    from bigseg.cli import main

    image = tmp_path / "o.ome.zarr"
    args = ["synth", str(image), "--shape", "1", "96", "96", "--nuclei", "6", "--seed", "3"]
    assert main([*args, "--elongation", "1.5", "2"]) == 0
    truth = pd.read_csv(tmp_path / "o_truth.csv")
    expected = make_truth((1, 96, 96), 6, seed=3, elongation=(1.5, 2.0))
    pd.testing.assert_frame_equal(truth, expected, check_dtype=False)
    assert main(["synth", str(tmp_path / "k.ome.zarr"), "--kind", "ovals2d", "--shape", "1",
                 "120", "160", "--nuclei", "8"]) == 0  # fmt: skip
    kind = pd.read_csv(tmp_path / "k_truth.csv")
    assert kind["aspect"].between(1.0, 2.0).all() and len(kind) == 8 * 2  # the kind's 2 frames
    # The shape and count given replace the kind's (they were ignored); the rest is the kind's.
    stack = open_stack(tmp_path / "k.ome.zarr")
    assert stack.shape == (2, 1, 120, 160) and stack.attrs["scale"]["y"] == pytest.approx(0.71)
    assert main(["synth", str(tmp_path / "h.ome.zarr"), "--kind", "hela2d", "-q"]) == 0
    assert open_stack(tmp_path / "h.ome.zarr").shape[-2:] == (700, 1100)
    # The command line names every kind (without importing the generator to list them).
    from bigseg.cli import build_parser
    from bigseg.synth import KINDS

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    kind = next(a for a in sub.choices["synth"]._actions if a.dest == "kind")
    assert tuple(kind.choices) == tuple(KINDS)


def test_fields_and_offset_do_not_depend_on_the_block():
    truth = make_truth((6, 60, 60), 4, seed=2, radius_um=(4, 5))
    options = dict(
        scale=(1.5, 0.71, 0.71), noise_seed=0, offset=30000.0, max_value=65535,
        autofluorescence=150.0, illumination=0.3, texture=0.2, read_noise=0.0,
    )  # fmt: skip
    whole = render(truth, (0, 0, 0, 0), (1, 6, 60, 60), **options).astype(float)
    left = render(truth, (0, 0, 0, 0), (1, 6, 60, 30), **options).astype(float)
    right = render(truth, (0, 0, 0, 30), (1, 6, 60, 30), **options).astype(float)
    assert whole.min() >= 30000 and whole.max() <= 65535
    # Same fields and signal; only the per-block shot noise differs (averaged out in tiles).
    diff = (np.concatenate([left, right], axis=3) - whole).reshape(6, 6, 10, 6, 10)
    assert np.abs(diff.mean(axis=(0, 2, 4))).max() < 5
    plain = render(truth, (0, 0, 0, 0), (1, 6, 60, 60), scale=(1.5, 0.71, 0.71), noise_seed=0)
    assert plain.max() <= 4095  # without the options: the 12-bit stack of before


def test_kinds_mimic_the_held_out_data():
    from bigseg.synth import KINDS, kind_options, synth_kind

    assert set(KINDS) == {"hela2d", "ovals2d", "heldout3d", "series"}
    for seed in range(3):
        spec = kind_options("hela2d", seed)
        assert 120 <= spec["nuclei"] <= 200 and spec["shape"] == (1, 700, 1100)
    image, truth, scale = synth_kind("hela2d", seed=1, shape=(1, 200, 300), nuclei=30)
    assert image.shape == (2, 1, 200, 300) and image.dtype == np.uint16
    assert 32900 < np.median(image) < 33200  # the camera offset and a dim background
    small = truth["r_um"] < 1.15 * KINDS["hela2d"]["truth"]["radius_um"][0]
    assert small.any() and truth.loc[small, "brightness"].median() > truth["brightness"].median()
    truth3d = make_truth((40, 384, 384), 10, seed=0, radius_px=(4.5, 12.0))
    assert truth3d["r_um"].between(4.5 * 0.71, 12.0 * 0.71).all()
    with pytest.raises(InputError, match="Unknown kind"):
        kind_options("confocal")


def test_oval_nuclei_have_the_spheres_area_their_aspect_and_angle():
    truth = make_truth((1, 200, 200), 6, scale=(1.0, 1.0, 1.0), seed=2, radius_um=(8, 12),
                       elongation=(1.5, 2.5), brightness=(1000, 1000))  # fmt: skip
    assert truth["aspect"].between(1.5, 2.5).all() and truth["angle"].between(0, np.pi).all()
    image = render(truth, (0, 0, 0, 0), (1, 1, 200, 200), scale=(1.0, 1.0, 1.0), read_noise=0.0,
                   background=0.0)[0, 0]  # fmt: skip
    yy, xx = np.mgrid[:200, :200]
    for row in truth.itertuples():
        near = np.hypot(yy - row.y_um, xx - row.x_um) < row.r_um * np.sqrt(row.aspect) + 2
        mask = near & (image > 500)  # inside the half-maximum contour
        assert mask.sum() == pytest.approx(np.pi * row.r_um**2, rel=0.05)
        ys, xs = np.nonzero(mask)
        values, vectors = np.linalg.eigh(np.cov(np.vstack([xs, ys])))
        assert np.sqrt(values[1] / values[0]) == pytest.approx(row.aspect, rel=0.08)
        along = np.arctan2(vectors[1, 1], vectors[0, 1]) % np.pi
        gap = abs(along - row.angle)
        assert min(gap, np.pi - gap) < 0.1
    # Round nuclei without the option: the same table as ever, and no oval columns.
    plain = make_truth((1, 200, 200), 6, scale=(1.0, 1.0, 1.0), seed=2, radius_um=(8, 12))
    assert "aspect" not in plain and len(plain) == 6
    with pytest.raises(InputError, match="elongation"):
        make_truth((1, 50, 50), 2, elongation=(0.5, 2.0))


def test_divisions_without_moving_nuclei_are_refused(tmp_path, capsys):
    # They were ignored: `bigseg synth --kind series --divisions 0.05` wrote nuclei drawn
    # anew at every time point, without a word.
    from bigseg.cli import main

    with pytest.raises(InputError, match="motion_um"):
        make_truth((8, 64, 64), 4, t=3, divisions=0.05)
    with pytest.raises(InputError, match="t > 1"):
        make_truth((8, 64, 64), 4, t=1, motion_um=2.0, divisions=0.05)
    assert main(["synth", str(tmp_path / "x.ome.zarr"), "--divisions", "0.05"]) == 2
    assert "--motion" in capsys.readouterr().err
    assert not (tmp_path / "x.ome.zarr").exists()
    moving = make_truth((8, 64, 64), 4, t=3, motion_um=2.0, divisions=0.05, seed=1)
    assert "track_id" in moving


def test_touching_oval_nuclei_meet_on_the_line_of_their_centres():
    from bigseg.synth import _oval_reach

    truth = make_truth((1, 400, 400), 40, scale=(1.0, 1.0, 1.0), seed=4, radius_um=(6, 9),
                       touching=0.5, elongation=(1.5, 2.0))  # fmt: skip
    pts = truth[["z_um", "y_um", "x_um"]].to_numpy()
    met = 0
    for i in range(len(truth)):
        for j in range(i):
            gap = pts[i] - pts[j]
            d = float(np.linalg.norm(gap))
            a, b = truth.iloc[i], truth.iloc[j]
            reach = _oval_reach(gap / d, a.r_um, a.aspect, a.angle)
            reach += _oval_reach(-gap / d, b.r_um, b.aspect, b.angle)
            met += 0.95 - 1e-9 <= d / reach <= 1.0 + 1e-9
    assert met >= 10  # touching pairs: 0.95-1.0 times the sum of their reaches apart


def test_visible_centres_are_the_centroid_of_what_the_stack_shows():
    from bigseg.synth import visible_centres

    scale = (1.5, 0.71, 0.71)
    truth = pd.DataFrame(
        {"t": [0, 0, 0], "z_um": [15.0, -2.0, 28.0], "y_um": [20.0, 20.0, 40.0],
         "x_um": [20.0, 40.0, 20.0], "r_um": [5.0, 6.0, 6.0], "brightness": [1.0] * 3}
    )  # fmt: skip
    shape = (20, 80, 80)  # planes at z = 0 ... 28.5 µm
    seen = visible_centres(truth, shape, scale=scale)
    # Inside the stack: its centre.  Cut by the bottom (centre below the first plane) or
    # the top: the centroid of the planes it shows, inside the stack, y and x unchanged.
    np.testing.assert_allclose(seen.loc[0, ["z_um", "y_um", "x_um"]], [15.0, 20.0, 20.0], atol=0.02)
    assert 0.0 < seen.loc[1, "z_um"] < 3.0 and seen.loc[2, "z_um"] < 28.0 - 1.5
    np.testing.assert_allclose(seen[["y_um", "x_um"]], truth[["y_um", "x_um"]], atol=0.02)
    # The centroid of the planes the stack shows, each weighted by its integral of the
    # rendered profile (a sphere with a soft edge of 0.6 µm), integrated over rings.
    z = np.arange(20) * 1.5
    rho = np.linspace(0.0, 12.0, 4001)
    for i, centre in ((1, -2.0), (2, 28.0)):
        dist = np.sqrt((z[:, None] - centre) ** 2 + rho[None] ** 2)
        plane = np.trapezoid(2 * np.pi * rho / (1 + np.exp((dist - 6.0) / 0.6)), rho, axis=1)
        expected = (z * plane).sum() / plane.sum()
        assert seen.loc[i, "z_um"] == pytest.approx(expected, abs=0.05)
    assert truth.loc[1, "z_um"] == -2.0  # the input is left as it was


def test_blur_spreads_the_light_in_z_and_blocks_join_without_seams():
    scale = (1.5, 0.71, 0.71)
    truth = make_truth((20, 64, 64), 1, scale=scale, seed=3, radius_um=(4.0, 4.0))
    truth["z_um"] = 15.0  # plane 10: room above and below
    options = {"autofluorescence": 60.0, "texture": 0.1, "read_noise": 0.0}
    sharp = render(truth, (0, 0, 0, 0), (1, 20, 64, 64), scale=scale, **options)
    blurred = render(
        truth, (0, 0, 0, 0), (1, 20, 64, 64), scale=scale, blur_um=(1.5, 0.2, 0.2), **options
    )
    row = truth.iloc[0]
    y, x = round(row.y_um / scale[1]), round(row.x_um / scale[2])

    def out_of_focus(image):  # the light 1-2 planes (1.5-3 µm) beyond the nucleus's faces
        profile = image[0, :, y, x].astype(float)
        return profile[[5, 6, 14, 15]].sum()  # (planes 7-13 hold the nucleus)

    assert out_of_focus(blurred) > out_of_focus(sharp) + 200
    # Blocks are rendered with the margin the Gaussian reaches: two halves are the whole.
    from bigseg.synth import _light

    light = dict(scale=scale, background=100.0, noise_seed=0, edge_um=0.6, autofluorescence=60.0,
                 illumination=0.2, texture=0.1, blur_um=(1.5, 0.2, 0.2))  # fmt: skip
    whole = _light(truth, (0, 0, 0, 0), (1, 20, 64, 64), **light)
    halves = np.concatenate(
        [_light(truth, (0, 0, 0, 0), (1, 9, 64, 64), **light),
         _light(truth, (0, 9, 0, 0), (1, 11, 64, 64), **light)], axis=1,
    )  # fmt: skip
    np.testing.assert_array_equal(whole, halves)


def test_a_bad_blur_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(InputError, match="blur_um"):
        synth(tmp_path / "s.ome.zarr", shape=(4, 32, 32), nuclei=2,
              render_options={"blur_um": (-1.0, 0.0, 0.0)})  # fmt: skip
    assert list(tmp_path.iterdir()) == []
