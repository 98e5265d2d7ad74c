"""bench/peers.py and bench/_datasets.py without the peers' environment.

The real VOL package lives in bench/.venv-peers only (``make bench-env``), which CI never
creates: these tests check the dataset loaders, the centre conversion, the recipe column,
and the subprocess plumbing and tuning with a stand-in VOL module run by this interpreter.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import _datasets  # noqa: E402
import peers  # noqa: E402

needs_data = pytest.mark.skipif(
    not _datasets.real_available(),
    reason=f"real test data not found under {_datasets.DATA} (see shared/data/README.md)",
)


@needs_data
def test_real_loaders_give_stack_scale_and_truth():
    image, scale, truth = _datasets.qcanet_8cell()
    assert image.shape == (51, 120, 122) and image.dtype == np.uint16
    assert scale == (1.75, 0.8, 0.8)
    assert len(truth) == 8 and {"z_um", "y_um", "x_um", "r_um"} <= set(truth.columns)
    image, scale, truth = _datasets.qcanet_16cell()
    assert image.shape == (51, 120, 122) and truth == 16
    image, scale, truth = _datasets.stardist_synthetic()
    assert image.shape == (31, 61, 57) and scale == (1.0, 1.0, 1.0)
    assert len(truth) == 51 and (truth["r_um"] > 0).all()
    image, scale, truth = _datasets.seed_stack()
    assert image.shape == (21, 114, 112) and scale == (1.5, 0.71, 0.71) and truth is None
    names = ["qcanet 8-cell", "qcanet 16-cell", "stardist synthetic", "seed stack"]
    assert list(_datasets.REAL) == names


def test_missing_real_stack_names_the_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(_datasets, "DATA", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="absent"):
        _datasets.seed_stack()


def test_label_truth_centres_and_radii_in_um():
    mask = np.zeros((4, 10, 10), np.uint16)
    mask[1:3, 2:4, 2:4] = 1  # 8 voxels, centre (1.5, 2.5, 2.5)
    mask[0, 8, 9] = 2
    truth = _datasets.label_truth(mask, scale=(2.0, 0.5, 0.5))
    np.testing.assert_allclose(truth[["z_um", "y_um", "x_um"]].to_numpy()[0], [3.0, 1.25, 1.25])
    np.testing.assert_allclose(truth["r_um"], np.cbrt(3 * np.array([8, 1]) * 0.5 / (4 * np.pi)))


def test_synthetic_stacks_offset_and_2d_series():
    image, scale, truth = _datasets.synth_hard((8, 64, 64), 4, offset=30000.0)
    assert image.shape == (8, 64, 64) and scale == (1.5, 0.71, 0.71)
    plain, _, _ = _datasets.synth_hard((8, 64, 64), 4)
    np.testing.assert_array_equal(image, plain + 30000)  # the same stack, shifted up
    series, _, truth = _datasets.synth_2d_series((64, 64), 3, t=2)
    assert series.shape == (2, 1, 64, 64)
    assert set(truth["t"]) == {0, 1} and (truth["z_um"] == 0).all()


def test_labels_to_nuclei_centroids_times_voxel_size():
    labels = np.zeros((3, 8, 8), np.int32)
    labels[0:2, 1:3, 1:3] = 5  # centroid (0.5, 1.5, 1.5) px
    labels[2, 6, 7] = 9
    found = peers.labels_to_nuclei(labels, (2.0, 0.5, 0.25))
    assert "t" not in found
    np.testing.assert_allclose(
        found[["z_um", "y_um", "x_um"]].to_numpy(), [[1.0, 0.75, 0.375], [4.0, 3.0, 1.75]]
    )
    assert found["label"].tolist() == [5, 9]
    series = peers.labels_to_nuclei(np.stack([labels, np.zeros_like(labels)]), (2.0, 0.5, 0.25))
    assert series["t"].tolist() == [0, 0]
    empty = peers.labels_to_nuclei(np.zeros((2, 4, 4), np.int32), (1.0, 1.0, 1.0))
    assert len(empty) == 0 and {"z_um", "y_um", "x_um"} <= set(empty.columns)


def test_recipe_column_scores_a_2d_series_frame_by_frame():
    series, scale, truth = _datasets.synth_2d_series((96, 96), 4, t=2, seed=5)
    found = peers.recipe_nuclei(series, scale)
    assert set(found["t"]) <= {0, 1} and (found["z_um"] == 0).all()
    row = peers.score_row("2d", "recipe", found, truth)
    assert row["truth"] == len(truth) and row["recall"] > 0.5


def test_vol_needs_the_peers_environment(monkeypatch, tmp_path):
    monkeypatch.setattr(peers, "PEERS_PYTHON", tmp_path / "no-python")
    assert not peers.peers_env_available()
    with pytest.raises(FileNotFoundError, match="make bench-env"):
        peers.vol_nuclei(np.zeros((2, 4, 4), np.uint16), (1.0, 1.0, 1.0))


STAND_IN = '''
"""Stand-in for the peer's package: labels of image > 100 * spot_sigma."""
from scipy import ndimage


def voronoi_otsu_labeling(image, spot_sigma=2, outline_sigma=2):
    return ndimage.label(image > 100 * spot_sigma)[0]
'''


@pytest.fixture
def stand_in_vol(monkeypatch, tmp_path):
    """Run bench/_vol_worker.py with this interpreter and a stand-in VOL module."""
    package = tmp_path / "napari_segment_blobs_and_things_with_membranes"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(STAND_IN))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setattr(peers, "PEERS_PYTHON", Path(sys.executable))


def _two_blobs(t: int | None = None):
    image = np.zeros((3, 20, 20), np.uint16)
    image[1, 2:5, 2:5] = 150  # dim: found with spot_sigma 1 only
    image[1, 12:15, 12:15] = 350
    truth = pd.DataFrame({"z_um": [1.0, 1.0], "y_um": [3.0, 13.0], "x_um": [3.0, 13.0]})
    truth["r_um"] = 3.0
    if t is None:
        return image, truth
    truth = pd.concat([truth.assign(t=k) for k in range(t)], ignore_index=True)
    return np.stack([image] * t), truth


def test_vol_tuned_picks_the_best_pair(stand_in_vol):
    image, truth = _two_blobs()
    scale = (1.0, 1.0, 1.0)
    pairs = [(3.0, 1.0), (1.0, 2.0), (2.0, 1.0)]
    found, info = peers.vol_tuned(image, scale, truth, pairs=pairs)
    assert info["sigmas"] == (1.0, 2.0) and info["tuned"]
    assert len(found) == 2 and peers.score_row("x", "VOL", found, truth)["f1"] == 1.0
    assert info["seconds"] >= 0 and info["grid_seconds"] >= info["seconds"]
    _, by_count = peers.vol_tuned(image, scale, 1, pairs=pairs)
    assert by_count["sigmas"] == (3.0, 1.0)
    untuned, default = peers.vol_tuned(image, scale, None, pairs=pairs)
    assert default["sigmas"] == peers.VOL_DEFAULT and not default["tuned"]
    assert len(untuned) == 1


def test_vol_runs_time_series_and_2d_frames(stand_in_vol):
    image, truth = _two_blobs(t=2)
    found = peers.vol_nuclei(image, (1.0, 1.0, 1.0), spot_sigma=1.0)
    assert found["t"].tolist() == [0, 0, 1, 1]
    assert peers.score_row("x", "VOL", found, truth)["f1"] == 1.0
    planes = image[:, 1:2]  # (t, 1, y, x): each frame goes to VOL as a 2D image
    labels, seconds = peers.vol_labels(planes, [(1.0, 1.0)])
    assert labels[0].shape == planes.shape and labels[0].max() == 2 and len(seconds) == 1


def test_bigseg_stacks_go_by_their_dims():
    from bigseg.stack import as_stack

    series = np.zeros((3, 1, 8, 8), np.uint16)  # a 2D time-lapse: t frames of one plane
    stack = as_stack(series, scale=(1.0, 0.5, 0.5))
    assert peers.as_4d(stack).shape == (3, 1, 8, 8) and peers.is_series(stack)
    assert peers.as_4d(stack.isel(t=0)).shape == (1, 1, 8, 8)
    assert not peers.is_series(stack.isel(t=0)) and not peers.is_series(series[0])
    assert peers.as_4d(series[0, 0]).shape == (1, 1, 8, 8)


def test_speed_bench_times_vol_alone(stand_in_vol, monkeypatch, tmp_path):
    import speed

    image, _ = _two_blobs()
    monkeypatch.setattr(speed, "_read_stack", lambda path: image)
    seconds, cpu, wall, peak, nuclei = speed.run_vol(tmp_path / "stack", tmp_path / "vol", (2, 1))
    assert nuclei == 1  # the stand-in's sigma 2 finds the bright blob only
    assert 0 <= seconds <= wall and cpu >= 0 and peak > 0
    assert not (tmp_path / "vol" / "labels_0.npy").exists()


def test_speed_bench_times_memory_limits_against_no_limit(tmp_path, capsys):
    # bench/speed.py --memory-limits: bigseg segment without a limit and with each one, the
    # blocks and budget from run.json, the outputs compared with the run without a limit.
    import speed

    args = ["--planes", "4", "--size", "128", "--repeats", "1", "--memory-limits", "1GiB",
            "--workdir", str(tmp_path)]  # fmt: skip
    assert speed.main(args) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| this")]
    assert len(rows) == 2
    none, limited = ([c.strip() for c in row.strip("|").split("|")] for row in rows)
    assert none[1] == "none" and none[6] == "1.00x" and limited[1] == "1GiB"
    assert limited[2].endswith("MiB")  # the worker's budget per task, measured
    assert limited[4] == "yes" and limited[-1] == "identical"


def test_dsb_image_loads_at_its_pixel_size():
    if not _datasets.dsb_available():
        pytest.skip(f"StarDist's 2D image not found under {_datasets.CACHE} (`make real-2d`)")
    image, scale, truth = _datasets.dsb2018_2d(0.65)
    assert image.shape == (1, 512, 512) and scale == (1.0, 0.65, 0.65)
    assert len(truth) == 125 and truth["y_um"].max() < 512 * 0.65
    assert truth["r_um"].median() == pytest.approx(11.8 * 0.65, rel=0.05)
