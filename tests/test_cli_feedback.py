"""The CLI's feedback: figures (`bigseg plot`), progress, summary and verbosity."""

import json
import shutil
import sys

import pytest

from bigseg.cli import build_parser, main, summary
from bigseg.pipeline import run
from bigseg.synth import synth


@pytest.fixture(scope="module")
def series_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("plot")
    image, _ = synth(root / "ts.ome.zarr", shape=(6, 64, 64), nuclei=3, t=2, seed=3)
    result = run(image, root / "out")
    return root, image, result


def test_plot_writes_every_figure_of_a_series(series_run, capsys):
    root, _, _ = series_run
    assert main(["plot", str(root / "out"), "--t", "1"]) == 0
    names = ["projections_t001.png", "montage_t001.png", "histogram_t001.png", "time.png"]
    for name in names:
        png = root / "out" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
    assert capsys.readouterr().out.startswith("Wrote projections_t001.png, montage_t001.png")


def test_plot_of_a_single_stack_has_no_time_figure(tmp_path):
    image, _ = synth(tmp_path / "s.ome.zarr", shape=(4, 48, 48), nuclei=2, seed=1)
    run(image, tmp_path / "out")
    assert main(["plot", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "histogram.png").exists()
    assert not (tmp_path / "out" / "time.png").exists()


def test_plot_names_the_fix_when_the_input_moved(series_run, tmp_path, capsys):
    root, image, _ = series_run
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    moved = tmp_path / "moved.ome.zarr"
    shutil.copytree(image, moved)
    record = json.loads((out / "run.json").read_text())
    record["input"]["source"] = str(tmp_path / "gone.ome.zarr")
    (out / "run.json").write_text(json.dumps(record))
    assert main(["plot", str(out)]) == 2
    assert "--input" in capsys.readouterr().err
    assert main(["plot", str(out), "--input", str(moved)]) == 0
    assert main(["plot", str(out), "--t", "5"]) == 2
    assert "time points 0 to 1" in capsys.readouterr().err


def test_plot_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 2
    assert "no run.json" in capsys.readouterr().err


def test_summary_is_one_paragraph_with_counts_speed_and_outputs(series_run):
    _, _, result = series_run
    wrapped = summary(result.record, "ts.ome.zarr", "out", 12.5)
    text = " ".join(wrapped.split())
    n = result.record["counts"]["nuclei"]
    assert text.startswith(f"Found {n} nuclei")
    assert "2 time points of 6 x 64 x 64 uint16" in text
    assert "Took 12.5 s" in text and "Mvoxel/s" in text
    assert "labels.zarr" in text and "bigseg plot out" in text
    assert "\n\n" not in wrapped and max(len(line) for line in wrapped.splitlines()) <= 100


def test_verbose_flag_before_or_after_the_subcommand():
    parser = build_parser()
    assert parser.parse_args(["segment", "in", "-o", "o"]).verbose == 0
    assert parser.parse_args(["-v", "segment", "in", "-o", "o"]).verbose == 1
    assert parser.parse_args(["segment", "in", "-o", "o", "-vv"]).verbose == 2
    assert parser.parse_args(["plot", "out", "-v"]).verbose == 1


@pytest.mark.slow
def test_progress_bar_only_on_a_terminal_and_quiet_prints_nothing(tmp_path, capsys, monkeypatch):
    image, _ = synth(tmp_path / "s.ome.zarr", shape=(4, 48, 48), nuclei=2, seed=1)
    common = ["--workers", "1", "--threads-per-worker", "1", "--memory-limit", "1GiB"]

    assert main(["segment", str(image), "-o", str(tmp_path / "a"), *common]) == 0
    out = capsys.readouterr().out
    assert "Completed" not in out  # captured output is not a terminal: no bars in logs
    assert "dashboard http://127.0.0.1:" in out and "Found 2 nuclei" in out

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["segment", str(image), "-o", str(tmp_path / "b"), *common]) == 0
    assert "100% Completed" in capsys.readouterr().out

    assert main(["segment", str(image), "-o", str(tmp_path / "c"), "-q", *common]) == 0
    assert capsys.readouterr().out == ""
    assert main(["segment", str(image), "-o", str(tmp_path / "d"), "--no-progress", *common]) == 0
    assert "Completed" not in capsys.readouterr().out
