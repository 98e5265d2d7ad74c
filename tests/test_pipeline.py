import json

import numpy as np
import pandas as pd
import pytest

import bigseg
from bigseg import InputError, Params, open_stack, run
from bigseg.synth import synth

from .conftest import SCALE, data_file


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    image, truth = synth(root / "s.ome.zarr", shape=(12, 128, 128), nuclei=10, seed=7)
    return image, pd.read_csv(truth)


@pytest.fixture(scope="module")
def result(sample, tmp_path_factory):
    image, _ = sample
    return run(image, tmp_path_factory.mktemp("out") / "result")


def test_outputs_exist_and_are_consistent(result, sample):
    image, truth = sample
    out = result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["nuclei.parquet", "nuclei.csv", "detections.parquet", "labels.zarr", "run.json"]
    )
    nuclei = pd.read_parquet(out / "nuclei.parquet")
    detections = pd.read_parquet(out / "detections.parquet")
    pd.testing.assert_frame_equal(nuclei, pd.read_csv(out / "nuclei.csv"), check_dtype=False)
    assert set(detections["nucleus"]) == set(nuclei["nucleus"])
    labels = open_stack(out / "labels.zarr")
    assert labels.shape == open_stack(image).shape
    assert labels.attrs["scale"] == pytest.approx(dict(zip("zyx", SCALE)))
    # Every labelled voxel of a plane belongs to a nucleus detected in that plane.
    values = labels.values
    for row in detections.sample(10, random_state=0).itertuples():
        plane = values[int(row.z)]
        assert (plane == row.nucleus).sum() == row.area_px
    assert set(np.unique(values)) - {0} == set(nuclei["nucleus"])
    record = json.loads((out / "run.json").read_text())
    assert record["counts"]["nuclei"] == len(nuclei)
    assert record["thresholds"] == pytest.approx(list(result.thresholds))
    assert record["parameters"]["pixels"]["smooth_radius"] == 5


def test_finds_the_synthetic_nuclei(result, sample):
    _, truth = sample
    s = bigseg.score(result.nuclei, truth)
    assert s.f1 == 1.0 and s.mean_error_um < 1.0


def test_existing_output_is_refused_and_untouched(sample, tmp_path):
    image, _ = sample
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="overwrite=True"):
        run(image, out)
    assert (out / "keep.txt").read_text() == "mine"
    # Not bigseg's output: refused even with overwrite (see test_pipeline_outputs.py).
    with pytest.raises(InputError, match="'keep.txt', which bigseg did not write"):
        run(image, out, overwrite=True)
    assert (out / "keep.txt").read_text() == "mine" and not (out / "run.json").exists()
    (out / "keep.txt").unlink()
    run(image, out)  # an empty directory is accepted
    run(image, out, overwrite=True)  # and bigseg's own output replaced
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["detections.parquet", "labels.zarr", "nuclei.csv", "nuclei.parquet", "run.json"]
    )


def test_output_inside_input_is_refused(sample):
    image, _ = sample
    with pytest.raises(InputError, match="inside"):
        run(image, image / "out")
    with pytest.raises(InputError, match="contains the input"):
        run(image, image.parent, overwrite=True)


def test_failed_run_leaves_no_output(sample, tmp_path, monkeypatch):
    image, _ = sample
    import bigseg.pipeline.partitions as pipeline  # the nuclei table is built there

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pipeline, "nuclei_table", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        run(image, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_time_series_run(tmp_path):
    image, truth_path = synth(tmp_path / "ts.ome.zarr", shape=(8, 80, 80), nuclei=4, t=3, seed=2)
    result = run(image, tmp_path / "out")
    assert sorted(result.nuclei["t"].unique()) == [0.0, 1.0, 2.0]
    assert len(result.thresholds) == 3
    labels = open_stack(tmp_path / "out" / "labels.zarr")
    assert labels.dims == ("t", "z", "y", "x")
    truth = pd.read_csv(truth_path)
    assert bigseg.score(result.nuclei, truth).f1 == 1.0


def test_seed_stack_default_run_separates_bright_nuclei(tmp_path):
    path = data_file("seed/test_nuclei_stack.tif")
    result = run(path, tmp_path / "out", scale=SCALE)
    # The recipe reported "4 (or is it 5?)"; single linkage merged them into 1.
    assert 4 <= len(result.nuclei) <= 5
    big = result.nuclei[result.nuclei["n_planes"] >= 5]
    assert len(big) >= 4
    centres = big[["y_um", "x_um"]].to_numpy()
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1)[np.triu_indices(len(big), 1)]
    assert gaps.min() > 5.0  # distinct nuclei, not one split nucleus


def test_seed_preset_run_matches_segment_measure(sample, tmp_path):
    image, _ = sample
    params = Params.from_preset("seed")
    result = run(image, tmp_path / "out", params=params)
    stack = open_stack(image)
    direct = bigseg.measure(bigseg.segment(stack, params=params), stack).compute()
    assert len(direct) == len(result.detections)
    np.testing.assert_allclose(
        np.sort(direct["intensity_sum"]), np.sort(result.detections["intensity_sum"])
    )


def test_run_segments_each_plane_once(sample, tmp_path, monkeypatch):
    import dask

    from bigseg.methods import seed

    calls = []
    original = seed.segment_plane

    def counting(plane, *args, **kwargs):
        calls.append(plane.shape)
        return original(plane, *args, **kwargs)

    monkeypatch.setattr(seed, "segment_plane", counting)
    image, _ = sample
    with dask.config.set(scheduler="synchronous"):
        run(image, tmp_path / "once", params=Params.from_preset("seed"))
    assert len(calls) == open_stack(image).sizes["z"]
