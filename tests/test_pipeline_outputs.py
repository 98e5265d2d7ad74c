"""An existing output is replaced only when bigseg wrote it and nothing was added since."""

from __future__ import annotations

import json

import pytest
import tifffile

import bigseg.pipeline.partitions as pipeline  # linking and the nuclei table run there
from bigseg import InputError, run
from bigseg.cli import main
from bigseg.pipeline.outputs import foreign_entries, local_entries

from .conftest import SCALE, synthetic
from .test_reliability import SCALE_ARGS, snapshot


@pytest.fixture(scope="module")
def tiff(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "stack.tif"
    tifffile.imwrite(path, synthetic(shape=(6, 48, 48), nuclei=3, seed=2)[0].values)
    return path


@pytest.fixture(scope="module")
def earlier(tmp_path_factory, tiff):
    """A finished bigseg output, to copy into each test."""
    out = tmp_path_factory.mktemp("earlier") / "result"
    run(tiff, out, scale=SCALE)
    return out


def copy_output(earlier, where):
    import shutil

    shutil.copytree(earlier, where)
    return where


def segment(tiff, out, *extra):
    return main(["segment", str(tiff), "-o", str(out), *SCALE_ARGS, "--no-progress", *extra])


# --------------------------------------------------------------------------- what is bigseg's


def test_a_whole_output_is_bigsegs(earlier):
    assert local_entries(earlier)
    assert foreign_entries(local_entries(earlier)) == []


@pytest.mark.parametrize(
    "entry",
    [
        ("notes.txt", False),
        ("analysis.ipynb", False),
        ("run-2025", True),
        ("labels.zarr", False),  # a file where bigseg writes a store
        ("run.json", True),
        ("labels.zarr/0/c/0/notes.txt", False),
        ("labels.zarr/mine", True),
        ("nuclei.parquet/notes.txt", False),
        ("my_projections.png", False),
    ],
)
def test_foreign_entries_are_named(entry):
    assert foreign_entries([entry]) == [entry[0]]


def test_figures_tracks_and_partitioned_tables_are_bigsegs():
    entries = [
        ("projections.png", False),
        ("montage_t003.png", False),
        ("tracks.parquet", False),
        ("nuclei.parquet", True),
        ("nuclei.parquet/t=3", True),
        ("nuclei.parquet/t=3/part.0.parquet", False),
        ("labels.zarr/1/c/0/0/0", False),
    ]
    assert foreign_entries(entries) == []


def test_only_the_top_most_foreign_entry_is_reported():
    entries = [("old", True), ("old/run.json", False), ("old/labels.zarr", True)]
    assert foreign_entries(entries) == ["old"]


# --------------------------------------------------------------------------- the rule, in use


def test_overwrite_refuses_a_folder_of_runs_and_notes(tmp_path, tiff, earlier, capsys):
    """The issue's case: ``-o my_results --overwrite`` on a folder of the user's."""
    mine = tmp_path / "my_results"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    copy_output(earlier, mine / "run1")
    copy_output(earlier, mine / "run2")
    before = snapshot(mine)
    assert segment(tiff, mine, "--overwrite") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "'notes.txt'" in err and "'run1'" in err and "did not write" in err
    assert snapshot(mine) == before


def test_overwrite_refuses_an_output_a_user_added_to(tmp_path, tiff, earlier, capsys):
    out = copy_output(earlier, tmp_path / "result")
    (out / "analysis.ipynb").write_text("{}")
    before = snapshot(out)
    assert segment(tiff, out, "--overwrite") == 2
    assert "'analysis.ipynb'" in capsys.readouterr().err
    assert snapshot(out) == before


def test_overwrite_refuses_a_folder_without_a_bigseg_record(tmp_path, tiff, capsys):
    out = tmp_path / "result"
    out.mkdir()
    (out / "nuclei.csv").write_text("a,b\n1,2\n")  # a name bigseg uses, but not bigseg's
    before = snapshot(out)
    assert segment(tiff, out, "--overwrite") == 2
    assert "not a bigseg output" in capsys.readouterr().err
    assert snapshot(out) == before


def test_overwrite_replaces_an_earlier_output(tmp_path, tiff, earlier):
    out = copy_output(earlier, tmp_path / "result")
    (out / "projections.png").write_bytes(b"an old figure")  # bigseg plot's
    old = json.loads((out / "run.json").read_text())["finished"]
    assert segment(tiff, out, "--overwrite") == 0
    assert not (out / "projections.png").exists()
    assert json.loads((out / "run.json").read_text())["finished"] >= old
    assert not list(tmp_path.glob(".result.*"))  # neither scratch nor the old output remain


def test_an_existing_output_still_needs_overwrite(tmp_path, tiff, earlier, capsys):
    out = copy_output(earlier, tmp_path / "result")
    before = snapshot(out)
    assert segment(tiff, out) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert snapshot(out) == before


def test_an_empty_directory_is_accepted(tmp_path, tiff):
    out = tmp_path / "result"
    out.mkdir()
    assert segment(tiff, out) == 0
    assert (out / "run.json").exists()


def test_missing_parents_are_created(tmp_path, tiff):
    out = tmp_path / "runs" / "2026" / "result"
    assert segment(tiff, out) == 0
    assert (out / "run.json").exists()


def test_a_parent_that_is_a_file_is_refused(tmp_path, tiff, capsys):
    (tmp_path / "runs").write_text("not a folder")
    assert segment(tiff, tmp_path / "runs" / "result") == 2
    assert "is a file" in capsys.readouterr().err


def test_a_symlinked_output_is_refused(tmp_path, tiff, earlier):
    target = copy_output(earlier, tmp_path / "real")
    link = tmp_path / "link"
    link.symlink_to(target)
    before = snapshot(target)
    with pytest.raises(InputError, match="not a directory"):
        run(tiff, link, scale=SCALE, overwrite=True)
    assert snapshot(target) == before


def test_files_added_during_the_run_are_kept(tmp_path, tiff, earlier, monkeypatch):
    """The output is checked again before it is replaced, and the run fails cleanly."""
    out = copy_output(earlier, tmp_path / "result")
    real = pipeline.nuclei_table

    def add_a_notebook(*args, **kwargs):
        (out / "analysis.ipynb").write_text("{}")
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "nuclei_table", add_a_notebook)
    before = snapshot(out)
    with pytest.raises(InputError, match="analysis.ipynb"):
        run(tiff, out, scale=SCALE, overwrite=True)
    after = snapshot(out)
    assert after.pop(str(out / "analysis.ipynb"))
    assert after == before  # the earlier output is untouched
    assert not list(tmp_path.glob(".result.*"))  # no partial output left behind


# --------------------------------------------------------------------------- bigseg synth


def test_synth_overwrite_replaces_only_its_own_stack(tmp_path, capsys):
    image = tmp_path / "s.ome.zarr"
    argv = ["synth", str(image), "--shape", "4", "32", "32", "--nuclei", "2"]
    assert main(argv) == 0
    assert main([*argv, "--overwrite", "--seed", "1"]) == 0  # its own: replaced
    (image / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    assert main([*argv, "--overwrite"]) == 2
    assert "not a synthetic stack that bigseg wrote" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("what", ["folder", "zarr", "truth"])
def test_synth_overwrite_refuses_what_bigseg_did_not_write(tmp_path, what, capsys):
    import numpy as np
    import zarr

    image = tmp_path / "data.zarr"
    if what == "folder":
        image.mkdir()
        (image / "experiment.tif").write_bytes(b"precious")
    elif what == "zarr":  # a user's own Zarr array
        zarr.create_array(image, shape=(4, 4), dtype="u2")[...] = np.ones((4, 4), "u2")
    else:
        (tmp_path / "data_truth.csv").write_text("cell,area\n1,20\n")
    before = snapshot(tmp_path)
    assert main(["synth", str(image), "--shape", "4", "32", "32", "--overwrite"]) == 2
    assert "left untouched" in capsys.readouterr().err
    assert snapshot(tmp_path) == before
