"""Folders and glob patterns of TIFF files (one file per time point or per plane)."""

import json
import os
import pickle
import subprocess
import sys

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr

import bigseg
import bigseg.io.tiff
from bigseg import InputError, open_stack
from bigseg.cli import main
from bigseg.io import write_ngff_image

from .conftest import raise_if_dask_computes, synthetic

RNG = np.random.default_rng(3)
FRAMES = RNG.integers(0, 4000, (12, 4, 10, 11)).astype(np.uint16)  # t, z, y, x


def _write(path, data, **options):
    tifffile.imwrite(path, data, **{"photometric": "minisblack", **options})


def _ctc(folder, frames=FRAMES, **write):
    """Write frames as the Cell Tracking Challenge does: t000.tif, t001.tif, ..."""
    folder.mkdir(exist_ok=True)
    for i, frame in enumerate(frames):
        _write(folder / f"t{i:03d}.tif", frame, **write)
    return folder


def test_ctc_folder_opens_as_time_series(tmp_path):
    folder = _ctc(tmp_path / "01")
    stack = open_stack(folder, scale=(2, 0.5, 0.5))
    assert stack.dims == ("t", "z", "y", "x") and stack.shape == FRAMES.shape
    assert stack.dtype == np.uint16 and stack.attrs["format"] == "tiff-sequence"
    assert stack.attrs["files"] == 12 and stack.attrs["files_axis"] == "t"
    np.testing.assert_array_equal(stack.values, FRAMES)
    assert stack.attrs["scale"] == {"z": 2.0, "y": 0.5, "x": 0.5}


def test_names_sort_naturally_t2_before_t10(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for i, frame in enumerate(FRAMES):
        _write(folder / f"t{i}.tif", frame)  # t0 ... t11, no zero padding
    (folder / "notes.txt").write_text("not an image")  # other files are left alone
    np.testing.assert_array_equal(open_stack(folder, scale=(1, 1, 1)).values, FRAMES)
    stack = open_stack(os.path.join(folder, "t*.tif"), scale=(1, 1, 1))
    np.testing.assert_array_equal(stack.values, FRAMES)


def test_sequence_is_lazy_and_chunked_by_page(tmp_path, monkeypatch):
    folder = _ctc(tmp_path / "01")
    reads = []
    original = bigseg.io.tiff._TiffArray.__getitem__
    monkeypatch.setattr(
        bigseg.io.tiff._TiffArray,
        "__getitem__",
        lambda self, key: reads.append(self.path) or original(self, key),
    )
    with raise_if_dask_computes():
        stack = open_stack(folder, scale=(1, 1, 1))
    assert reads == []  # no pixel read on open
    assert stack.data.chunks == ((1,) * 12, (1,) * 4, (10,), (11,))
    np.testing.assert_array_equal(stack[5, 1].values, FRAMES[5, 1])
    assert set(reads) == {str(folder / "t005.tif")}  # one time point reads one file
    restored = pickle.loads(pickle.dumps(stack.data))  # only paths travel to workers
    np.testing.assert_array_equal(restored.compute(scheduler="synchronous"), FRAMES)


def test_glob_of_planes_makes_z_or_t(tmp_path):
    planes = tmp_path / "planes"
    planes.mkdir()
    for i, plane in enumerate(FRAMES[:, 0]):
        tifffile.imwrite(planes / f"plane_{i}.tiff", plane)
    pattern = str(planes / "*.tiff")
    z = open_stack(pattern, files_axis="z", scale=(1.5, 0.7, 0.7))
    assert z.dims == ("z", "y", "x") and z.shape == (12, 10, 11)
    np.testing.assert_array_equal(z.values, FRAMES[:, 0])
    assert z.attrs["source"] == pattern and z.attrs["files_axis"] == "z"
    t = open_stack(pattern, scale=(0.7, 0.7))  # files make t by default
    assert t.dims == ("t", "z", "y", "x") and t.shape == (12, 1, 10, 11)
    np.testing.assert_array_equal(t.values[:, 0], FRAMES[:, 0])
    # A z step for planes read as time points would be lost: the choice is asked for.
    with pytest.raises(InputError, match=r"12 files of one plane.*files_axis='z'") as info:
        open_stack(pattern, scale=(1.5, 0.7, 0.7))
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match=r"no pixel size.*scale=\(y, x\).*files_axis='z'"):
        open_stack(pattern)


def test_scale_from_the_first_file_and_argument_wins(tmp_path):
    folder = _ctc(
        tmp_path / "ij",
        imagej=True,
        resolution=(1 / 0.25, 1 / 0.25),
        metadata={"spacing": 1.5, "unit": "um", "axes": "ZYX"},
    )
    assert open_stack(folder).attrs["scale"] == {"z": 1.5, "y": 0.25, "x": 0.25}
    # (within 2x of the file in y and x: a farther one is warned about, see test_scale_checks.py)
    argued = open_stack(folder, scale=(3, 0.3, 0.3)).attrs["scale"]
    assert argued == {"z": 3.0, "y": 0.3, "x": 0.3}
    with pytest.raises(InputError, match=r"scale=\(z, y, x\)"):
        open_stack(_ctc(tmp_path / "plain"))  # no metadata: same rule as one file


def test_planes_making_z_need_a_z_spacing(tmp_path):
    folder = _ctc(
        tmp_path / "planes",
        frames=FRAMES[:, 0],
        imagej=True,
        resolution=(1 / 0.25, 1 / 0.25),
        metadata={"unit": "um", "axes": "YX"},
    )
    with pytest.raises(InputError, match=r"scale=\(z, y, x\)") as info:
        open_stack(folder, files_axis="z")
    assert "\n" not in str(info.value)
    stack = open_stack(folder, files_axis="z", scale=(2, 0.25, 0.25))
    assert stack.shape == (12, 10, 11)


@pytest.mark.parametrize(
    "odd,message",
    [
        (FRAMES[0, :2], r"'t007.tif'.*shape \(2, 10, 11\).*first file 't000.tif'.*\(4, 10, 11\)"),
        (FRAMES[0].astype(np.float32), r"'t007.tif'.*float32.*first file 't000.tif'.*uint16"),
        (FRAMES[0, 0], r"'t007.tif'.*shape \(10, 11\).*\(4, 10, 11\)"),
    ],
    ids=["shape", "dtype", "2d-among-3d"],
)
def test_mixed_files_are_one_sentence_naming_the_first_odd_file(tmp_path, odd, message):
    folder = _ctc(tmp_path / "01")
    _write(folder / "t007.tif", odd)
    _write(folder / "t009.tif", odd)
    with pytest.raises(InputError, match=message) as info:
        open_stack(folder, scale=(1, 1, 1))
    assert "\n" not in str(info.value) and "Error" not in str(info.value)


def test_nothing_to_open_is_one_sentence(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="neither a Zarr store nor holds TIFF files"):
        open_stack(empty, scale=(1, 1, 1))
    (empty / "a.png").write_bytes(b"png")
    with pytest.raises(InputError, match="neither a Zarr store nor holds TIFF files"):
        open_stack(empty, scale=(1, 1, 1))
    with pytest.raises(InputError, match="matches no files"):
        open_stack(str(tmp_path / "nowhere" / "*.tif"), scale=(1, 1, 1))
    with pytest.raises(InputError, match="matches 1 file but no TIFF"):
        open_stack(str(empty / "*.png"), scale=(1, 1, 1))


def test_bad_files_axis(tmp_path):
    folder = _ctc(tmp_path / "01")
    with pytest.raises(InputError, match="files_axis='c'.*choose 't'.*or 'z'"):
        open_stack(folder, scale=(1, 1, 1), files_axis="c")
    with pytest.raises(InputError, match="files_axis.*folder or a glob pattern of TIFF"):
        open_stack(folder / "t000.tif", scale=(1, 1, 1), files_axis="z")
    tifffile.imwrite(tmp_path / "tz.tif", FRAMES[:2], imagej=True, metadata={"axes": "TZYX"})
    with pytest.raises(InputError, match="time axis.*files_axis='t'"):
        open_stack(str(tmp_path / "tz*.tif"), scale=(1, 1, 1), files_axis="z")


def test_files_with_a_time_axis_join_along_it(tmp_path):
    for i in range(3):
        tifffile.imwrite(
            tmp_path / f"part{i}.tif", FRAMES[4 * i : 4 * i + 4], imagej=True,
            metadata={"axes": "TZYX"},
        )  # fmt: skip
    stack = open_stack(str(tmp_path / "part*.tif"), scale=(1, 1, 1))
    assert stack.dims == ("t", "z", "y", "x")
    np.testing.assert_array_equal(stack.values, FRAMES)


def test_zarr_folders_still_open_as_zarr(tmp_path):
    path = tmp_path / "img.ome.zarr"
    write_ngff_image(
        da.from_array(FRAMES[0]), path, dims=("z", "y", "x"), scale={"z": 2.0, "y": 0.5, "x": 0.5}
    )
    _write(path / "stray.tif", FRAMES[1])  # a TIFF inside does not change that
    stack = open_stack(path)
    assert stack.attrs["format"] == "ome-zarr-0.5"
    np.testing.assert_array_equal(stack.values, FRAMES[0])
    arr = zarr.create_array(tmp_path / "arr.zarr", shape=(4, 10, 11), dtype="uint16")
    arr[:] = FRAMES[0]
    np.testing.assert_array_equal(
        open_stack(tmp_path / "arr.zarr", scale=(1, 1, 1)).values, FRAMES[0]
    )


def _cli(*args, cwd):
    """Run the command line through a shell, quoted as a person types it."""
    command = " ".join([f"{sys.executable} -m bigseg.cli", *args])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        command, shell=True, cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _nuclei(out):
    table = pd.read_parquet(out / "nuclei.parquet")
    return table.sort_values(["t", "z", "y", "x"]).reset_index(drop=True)


@pytest.mark.slow  # a command-line run starts a local cluster in a new process (~15 s)
def test_cli_segments_a_glob_and_a_folder_like_one_multipage_tiff(tmp_path, monkeypatch):
    stack, truth = synthetic((8, 64, 64), nuclei=4, t=2, seed=2)
    frames = stack.values
    scale = stack.attrs["scale"]

    def ij(axes):
        resolution = (1 / scale["y"], 1 / scale["x"])
        meta = {"spacing": scale["z"], "unit": "um", "axes": axes}
        return {"imagej": True, "resolution": resolution, "metadata": meta}

    (tmp_path / "ctc").mkdir()
    for i, frame in enumerate(frames):
        tifffile.imwrite(tmp_path / "ctc" / f"t{i:03d}.tif", frame, **ij("ZYX"))
    tifffile.imwrite(tmp_path / "all.tif", frames, **ij("TZYX"))
    fast = "--workers 1 --threads-per-worker 1 --memory-limit 1GiB -q"
    _cli('segment "ctc/*.tif" -o glob_out', fast, cwd=tmp_path)
    bigseg.run(tmp_path / "ctc", tmp_path / "folder_out")  # a folder, from Python
    bigseg.run(tmp_path / "all.tif", tmp_path / "tiff_out")  # one multi-page TIFF
    reference = _nuclei(tmp_path / "tiff_out")
    assert len(reference) == len(truth) > 0
    for out in ("glob_out", "folder_out"):
        pd.testing.assert_frame_equal(_nuclei(tmp_path / out), reference)
    record = json.loads((tmp_path / "glob_out" / "run.json").read_text())
    assert record["input"]["source"].endswith(os.path.join("ctc", "*.tif"))
    assert record["input"]["files"] == 2 and record["input"]["files_axis"] == "t"
    monkeypatch.chdir(tmp_path)
    assert main(["plot", "glob_out"]) == 0  # the run is reopened from its pattern
    assert (tmp_path / "glob_out" / "projections_t000.png").stat().st_size > 10_000


def test_resume_fingerprint_sees_a_changed_file_of_a_folder(tmp_path):
    from bigseg.pipeline.scratch import fingerprint

    folder = _ctc(tmp_path / "01")
    before = fingerprint(open_stack(folder, scale=(1, 1, 1)), str(folder), {})
    _write(folder / "t004.tif", FRAMES[5])  # same shape and dtype, other pixels
    after = fingerprint(open_stack(folder, scale=(1, 1, 1)), str(folder), {})
    assert before != after


def test_output_containing_files_of_a_pattern_is_refused(tmp_path):
    from bigseg.pipeline import check_output

    folder = _ctc(tmp_path / "01")
    pattern = str(folder / "t*.tif")
    for out in (folder, tmp_path, folder / "t003.tif"):
        with pytest.raises(InputError, match="is the input or inside it|contains the input"):
            check_output(out, pattern, overwrite=True)
    check_output(folder / "out", pattern, overwrite=False)  # beside the files: allowed
    assert len(list(folder.iterdir())) == 12
