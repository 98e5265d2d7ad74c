"""Time series at scale: time selection, and graphs that grow O(1) per time point."""

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest

import bigseg
from bigseg import InputError, open_stack, run
from bigseg.cli import main
from bigseg.measure import measure_delayed
from bigseg.pipeline import relabel
from bigseg.stack import as_stack
from bigseg.synth import synth
from bigseg.track import track

from .conftest import SCALE


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    root = tmp_path_factory.mktemp("series")
    image, truth = synth(root / "ts.ome.zarr", shape=(6, 64, 64), nuclei=3, t=5, seed=8)
    return image, pd.read_csv(truth), run(image, root / "all")


def _tasks(n_t):
    data = da.zeros((n_t, 8, 128, 128), np.uint16, chunks=(1, 8, 128, 128))
    stack = as_stack(data, scale=SCALE)
    threshold = bigseg.global_threshold(stack, params=bigseg.Params(preset="seed")).data
    labels = bigseg.segment(stack, threshold=np.zeros(n_t))
    tables = dask.delayed(list)(measure_delayed(labels, stack))
    linked = pd.DataFrame({"t": [0.0], "z": [0.0], "label": [1], "nucleus": [1]})
    relabelled = relabel(labels.data, linked)
    return [len(c.__dask_graph__()) for c in (threshold, labels.data, tables, relabelled)]


def test_graph_grows_by_a_constant_per_time_point():
    t10, t20, t40 = _tasks(10), _tasks(20), _tasks(40)
    for a, b, c in zip(t10, t20, t40):
        assert c - b == 2 * (b - a)  # exactly linear in the number of time points
        assert (c - b) / 20 <= 8  # a few tasks per time point in each pass


def test_time_selection_keeps_original_indices(series, tmp_path):
    image, truth, whole = series
    part = run(image, tmp_path / "part", t=slice(1, 4))
    assert sorted(part.nuclei["t"].unique()) == [1.0, 2.0, 3.0]
    assert part.record["input"]["t_selected"] == [1, 2, 3]
    # Ids (nucleus, and the tracks') are numbered afresh in a run of fewer time points.
    ids = ["nucleus", "track_id", "parent_track_id"]
    selected = whole.nuclei[whole.nuclei["t"].between(1, 3)]
    expected = selected.drop(columns=ids)
    got = part.nuclei.drop(columns=ids)
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True), expected.reset_index(drop=True), check_exact=False
    )
    # The tracks are those of tracking the same nuclei, time points 1 to 3, in memory.
    same = selected.drop(columns=ids[1:]).assign(nucleus=part.nuclei["nucleus"].to_numpy())
    retracked, _ = track(same, times=np.array([1, 2, 3]))
    np.testing.assert_array_equal(retracked["track_id"], part.nuclei["track_id"])
    np.testing.assert_array_equal(retracked["parent_track_id"], part.nuclei["parent_track_id"])
    labels = open_stack(tmp_path / "part" / "labels.zarr")
    assert labels.sizes["t"] == 3


def test_time_selection_from_the_command_line(series, tmp_path, capsys):
    image, _, _ = series
    assert main(["segment", str(image), "-o", str(tmp_path / "o"), "--t", "3", "-q",
                 "--workers", "1", "--threads-per-worker", "1"]) == 0  # fmt: skip
    assert pd.read_parquet(tmp_path / "o" / "nuclei.parquet")["t"].unique().tolist() == [3.0]
    assert main(["segment", str(image), "-o", str(tmp_path / "p"), "--t", "7:9"]) == 2
    assert "keeps no time point" in capsys.readouterr().err


def test_time_selection_on_a_3d_stack_is_refused(tmp_path):
    stack = as_stack(np.zeros((2, 32, 32), np.uint16), scale=SCALE)
    with pytest.raises(InputError, match="no time axis"):
        run(stack, tmp_path / "out", t=slice(0, 1))
