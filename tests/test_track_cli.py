"""Tracks from the command line: synth --motion, segment, track, export-ctc, score --ctc."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import tifffile

from bigseg.cli import main
from bigseg.pipeline.partitions import read_parts

from .test_cli import bigseg

SHAPE = ("--shape", 12, 96, 96, "--scale", 1.5, 0.5, 0.5, "--radius-um", 4, 6)


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracks")
    bigseg("synth", root / "s.ome.zarr", *SHAPE, "--nuclei", 8, "--t", 5, "--seed", 3,
           "--motion", 1.0, "--divisions", 0.05, "--frame-interval", 120)  # fmt: skip
    bigseg("segment", root / "s.ome.zarr", "-o", root / "out", "--workers", 1,
           "--threads-per-worker", 2, "--no-progress")  # fmt: skip
    return root


def test_synth_writes_the_true_lineage_in_the_ctc_format(series):
    truth = pd.read_csv(series / "s_truth.csv")
    assert {"track_id", "parent_track_id"} <= set(truth.columns)
    tra = series / "s_ctc" / "TRA"
    rows = np.loadtxt(tra / "man_track.txt", dtype=np.int64, ndmin=2)
    assert sorted(rows[:, 0]) == sorted(truth["track_id"].unique())
    masks = sorted(p.name for p in tra.glob("man_track*.tif"))
    assert masks == [f"man_track{t:03d}.tif" for t in range(5)]
    first = tifffile.imread(tra / "man_track000.tif")
    assert first.shape == (12, 96, 96)
    assert set(np.unique(first)) - {0} == set(truth.loc[truth["t"] == 0, "track_id"])


def test_segment_tracks_a_series_by_default(series):
    out = series / "out"
    nuclei = read_parts(out / "nuclei.parquet")
    assert nuclei["track_id"].min() >= 1 and nuclei["track_id"].dtype == np.int64
    tracks = read_parts(out / "tracks.parquet")
    assert set(tracks["track_id"]) == set(nuclei["track_id"])
    record = json.loads((out / "run.json").read_text())
    assert record["tracking"]["frame_interval_s"] == 120.0
    assert record["tracking"]["frame_interval_source"] == "metadata:ome-zarr:t-scale"
    assert record["tracking"]["counts"]["tracks"] == len(tracks)
    moving = tracks["length"] > 1
    speeds = tracks.loc[moving, "mean_speed_um_per_min"]
    np.testing.assert_allclose(speeds, tracks.loc[moving, "mean_speed_um_per_frame"] / 2.0)
    csv = pd.read_csv(out / "nuclei.csv")
    np.testing.assert_array_equal(csv["track_id"], nuclei["track_id"])


def test_score_gives_link_division_and_ctc_scores(series, tmp_path):
    pytest.importorskip(
        "ctc_metrics",
        reason="py-ctcmetrics is bigseg's optional 'tracking' extra (make test installs it)",
    )
    out = series / "out"
    assert main(["export-ctc", str(out), str(tmp_path / "ctc")]) == 0
    masks = sorted(p.name for p in (tmp_path / "ctc").glob("mask*.tif"))
    assert masks == [f"mask{t:03d}.tif" for t in range(5)]
    proc = bigseg("score", out / "nuclei.parquet", series / "s_truth.csv", "--json",
                  "--ctc", tmp_path / "ctc", series / "s_ctc")  # fmt: skip
    scores = json.loads(proc.stdout)
    assert scores["f1"] >= 0.95
    assert scores["tracking"]["link_f1"] >= 0.95
    assert scores["ctc"]["TRA"] >= 0.95 and scores["ctc"]["DET"] >= 0.95
    assert scores["ctc"]["LNK"] == pytest.approx(scores["tracking"]["link_recall"], abs=0.05)


def test_score_of_a_run_on_some_time_points_takes_their_truth(series, tmp_path, capsys):
    # A run with --t 1:4 is scored against the truth of t 1-3, its links and divisions too
    # (a daughter's mother at t 0 is outside): found by a new-user trial.
    out = tmp_path / "part"
    assert main(["segment", str(series / "s.ome.zarr"), "-o", str(out), "--t", "1:4", "-q"]) == 0
    capsys.readouterr()
    assert main(["score", str(out), str(series / "s_truth.csv"), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    truth = pd.read_csv(series / "s_truth.csv")
    assert scores["truth_time_points"] == [1, 2, 3]
    assert scores["n_true"] == int(truth["t"].between(1, 3).sum())
    assert scores["f1"] >= 0.95 and scores["tracking"]["link_f1"] >= 0.95


def test_synth_and_export_ctc_take_quiet_as_the_other_commands_do(series, tmp_path, capsys):
    image = tmp_path / "q.ome.zarr"
    assert main(["synth", str(image), "--shape", "4", "32", "32", "--nuclei", "2", "-q"]) == 0
    assert main(["export-ctc", str(series / "out"), str(tmp_path / "ctc"), "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert image.is_dir() and (tmp_path / "ctc" / "res_track.txt").is_file()


def test_export_ctc_refuses_a_folder_that_holds_something(series, tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep")
    assert main(["export-ctc", str(series / "out"), str(tmp_path)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["mine.txt"]


def test_track_again_replaces_the_tables_and_leaves_no_scratch(series, tmp_path, capsys):
    out = tmp_path / "out"
    import shutil

    shutil.copytree(series / "out", out)
    before = read_parts(out / "nuclei.parquet")
    assert main(["track", str(out), "--search-radius", "0.5", "--no-progress"]) == 0
    assert "tracks" in capsys.readouterr().out
    after = read_parts(out / "nuclei.parquet")
    untracked = [c for c in before.columns if c not in ("track_id", "parent_track_id")]
    pd.testing.assert_frame_equal(after[untracked], before[untracked])
    # 0.5 µm is less than the motion: (almost) every nucleus is a track of its own now.
    assert after["track_id"].nunique() > before["track_id"].nunique()
    record = json.loads((out / "run.json").read_text())
    assert record["tracking"]["parameters"]["search_radius"] == 0.5
    assert record["tracking"]["retracked"]["command"][:2] == ["bigseg", "track"]
    assert len(read_parts(out / "tracks.parquet")) == after["track_id"].nunique()
    assert sorted(os.listdir(tmp_path)) == ["out"]  # the scratch directory is gone
    capsys.readouterr()
    assert main(["track", str(out), "-q"]) == 0  # and back, printing nothing
    assert capsys.readouterr().out == ""
    pd.testing.assert_frame_equal(read_parts(out / "nuclei.parquet"), before)


def test_track_refuses_what_bigseg_did_not_write(series, tmp_path, capsys):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(series / "out", out)
    (out / "nuclei.parquet" / "notes.txt").write_text("mine")
    before = sorted(os.listdir(out / "nuclei.parquet"))
    assert main(["track", str(out)]) == 2
    assert "did not" in capsys.readouterr().err
    assert sorted(os.listdir(out / "nuclei.parquet")) == before
    (tmp_path / "plain").mkdir()
    assert main(["track", str(tmp_path / "plain")]) == 2
    assert "not a bigseg output" in capsys.readouterr().err
    assert main(["track", str(out), "--search-radius", "-1"]) == 2
    assert "--search-radius -1" in capsys.readouterr().err


def test_no_track_writes_no_tracks(series, tmp_path):
    bigseg("segment", series / "s.ome.zarr", "-o", tmp_path / "out", "--no-track",
           "--workers", 1, "--threads-per-worker", 1, "--no-progress", "--t", "0:2")  # fmt: skip
    assert not (tmp_path / "out" / "tracks.parquet").exists()
    assert "track_id" not in read_parts(tmp_path / "out" / "nuclei.parquet")
    assert json.loads((tmp_path / "out" / "run.json").read_text())["tracking"] is None


def test_track_labels_from_the_command_line(series, tmp_path, capsys):
    import shutil

    import zarr

    out = tmp_path / "out"
    shutil.copytree(series / "out", out)
    assert main(["track", str(out), "--track-labels", "--no-progress"]) == 0
    capsys.readouterr()
    nuclei = read_parts(out / "nuclei.parquet")
    labels = zarr.open_array(out / "labels.zarr" / "0", mode="r")[...]
    by_track = zarr.open_array(out / "track_labels.zarr" / "0", mode="r")[...]
    lut = np.zeros(int(labels.max()) + 1, np.int64)
    lut[nuclei["nucleus"].to_numpy()] = nuclei["track_id"].to_numpy()
    np.testing.assert_array_equal(by_track, lut[labels])
    assert json.loads((out / "run.json").read_text())["tracking"]["track_labels"] is True
    # Tracked again without the flag: rebuilt from the new tracks, never left stale.
    assert main(["track", str(out), "--search-radius", "0.5", "--no-progress"]) == 0
    nuclei = read_parts(out / "nuclei.parquet")
    lut[nuclei["nucleus"].to_numpy()] = nuclei["track_id"].to_numpy()
    by_track = zarr.open_array(out / "track_labels.zarr" / "0", mode="r")[...]
    np.testing.assert_array_equal(by_track, lut[labels])
    # Without tracks there is nothing to label by: one sentence naming the flag.
    code = main(["segment", str(series / "s.ome.zarr"), "-o", str(tmp_path / "none"),
                 "--no-track", "--track-labels", "--workers", "1", "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--track-labels needs tracks" in err and "Traceback" not in err
    assert not (tmp_path / "none").exists()
