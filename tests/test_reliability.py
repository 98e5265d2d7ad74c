"""Reliability: bad input, odd but valid input, faults, interruption, resume, safety.

One test (or one parametrized case) per case of the table in docs/reliability.md.
"""

import hashlib
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr

import bigseg
from bigseg import InputError, open_stack, run
from bigseg.cli import main
from bigseg.cluster import NUCLEUS_COLUMNS
from bigseg.pipeline.safety import nonfinite_count
from bigseg.pipeline.scratch import scratch_path
from bigseg.tables import DETECTION_COLUMNS

from .conftest import SCALE, raise_if_dask_computes, synthetic

SCALE_ARGS = ["--scale", *map(str, SCALE)]


# --------------------------------------------------------------------------- helpers


def cli(*args, timeout=240):
    """Run ``bigseg`` in a subprocess (real signals, real worker processes)."""
    return subprocess.run(
        [sys.executable, "-m", "bigseg.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_zarr(path, data, names=("z", "y", "x"), chunks=None):
    arr = zarr.create_array(
        path,
        shape=data.shape,
        chunks=chunks or data.shape,
        dtype=data.dtype,
        dimension_names=names,
    )
    if data.size:
        arr[...] = data
    return path


def snapshot(path):
    """Every file under ``path`` (or the file itself): size, mtime and content hash."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in files
    }


def assert_same_outputs(a, b):
    """Two output directories hold identical tables and label volumes."""
    for name in ("nuclei.parquet", "detections.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(Path(a) / name), pd.read_parquet(Path(b) / name)
        )
    la = zarr.open_array(Path(a) / "labels.zarr" / "0", mode="r")[...]
    lb = zarr.open_array(Path(b) / "labels.zarr" / "0", mode="r")[...]
    np.testing.assert_array_equal(la, lb)


@pytest.fixture(scope="module")
def stack_and_truth():
    return synthetic(shape=(10, 96, 96), nuclei=6, seed=1)


@pytest.fixture(scope="module")
def tiff(tmp_path_factory, stack_and_truth):
    path = tmp_path_factory.mktemp("tiff") / "stack.tif"
    tifffile.imwrite(path, stack_and_truth[0].values)
    return path


# --------------------------------------------------------------------------- bad input


def _pickle_zarr(tmp, marker):
    """A Zarr v2 array whose pickle codec would create ``marker`` if ever decoded."""
    path = tmp / "pickled.zarr"
    path.mkdir()
    meta = {
        "zarr_format": 2,
        "shape": [2, 4, 4],
        "chunks": [2, 4, 4],
        "dtype": "|O",
        "compressor": None,
        "fill_value": 0,
        "filters": [{"id": "pickle", "protocol": 5}],
        "order": "C",
    }
    (path / ".zarray").write_text(json.dumps(meta))

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    (path / "0.0.0").write_bytes(pickle.dumps(Payload()))
    return path


def _truncated(tmp, imagej):
    path = tmp / ("cut_ij.tif" if imagej else "cut.tif")
    data = np.arange(5 * 64 * 64, dtype=np.uint16).reshape(5, 64, 64)
    kwargs = {"imagej": True, "metadata": {"axes": "ZYX"}} if imagej else {}
    tifffile.imwrite(path, data, **kwargs)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) * 6 // 10])
    return path


BAD_INPUTS = {
    # case: (builder(tmp) -> argv tail after "segment", expected message fragment)
    "missing path": (lambda t: [t / "nope.tif"], "does not exist"),
    "text file with .tif extension": (
        lambda t: [(t / "x.tif").write_text("hello") and t / "x.tif", *SCALE_ARGS],
        "Could not read",
    ),
    "empty .tif file": (
        lambda t: [(t / "e.tif").write_bytes(b"") or t / "e.tif", *SCALE_ARGS],
        "Could not read",
    ),
    "unknown extension": (
        lambda t: [(t / "x.png").write_bytes(b"\x89PNG") and t / "x.png"],
        "neither a TIFF",
    ),
    "directory that is not Zarr": (
        lambda t: [(t / "d.zarr").mkdir() or t / "d.zarr", *SCALE_ARGS],
        "Zarr",
    ),
    "truncated TIFF": (lambda t: [_truncated(t, False), *SCALE_ARGS], "truncated"),
    "truncated ImageJ TIFF": (lambda t: [_truncated(t, True), *SCALE_ARGS], "corrupt"),
    "complex dtype": (
        lambda t: [write_zarr(t / "c.zarr", np.zeros((2, 8, 8), np.complex64)), *SCALE_ARGS],
        "dtype complex64",
    ),
    "bool dtype": (
        lambda t: [write_zarr(t / "b.zarr", np.zeros((2, 8, 8), bool)), *SCALE_ARGS],
        "dtype bool",
    ),
    "1D array": (
        lambda t: [
            write_zarr(t / "1d.zarr", np.zeros(50, np.uint16), names=None),
            *SCALE_ARGS,
        ],
        "2D (y, x)",
    ),
    "1D array with a dim name": (
        lambda t: [write_zarr(t / "x.zarr", np.zeros(50, np.uint16), names=("x",)), *SCALE_ARGS],
        "including y and x",
    ),
    "5D array without dim names": (
        lambda t: [
            write_zarr(t / "5d.zarr", np.zeros((2, 2, 2, 8, 8), np.uint16), names=None),
            *SCALE_ARGS,
        ],
        "no dimension names",
    ),
    "6D array": (
        lambda t: [
            write_zarr(
                t / "6d.zarr",
                np.zeros((1, 2, 2, 2, 8, 8), np.uint16),
                names=("q", "t", "c", "z", "y", "x"),
            ),
            *SCALE_ARGS,
        ],
        "dims",
    ),
    "channel axis without --channel": (
        lambda t: [
            write_zarr(
                t / "tczyx.zarr",
                np.zeros((2, 3, 2, 8, 8), np.uint16),
                names=("t", "c", "z", "y", "x"),
            ),
            *SCALE_ARGS,
        ],
        "--channel (0 to 2)",
    ),
    "--channel out of range": (
        lambda t: [
            write_zarr(
                t / "czyx.zarr", np.zeros((3, 2, 8, 8), np.uint16), names=("c", "z", "y", "x")
            ),
            *SCALE_ARGS,
            "--channel",
            5,
        ],
        "out of range",
    ),
    "zero-size axis": (
        lambda t: [write_zarr(t / "empty.zarr", np.zeros((0, 8, 8), np.uint16)), *SCALE_ARGS],
        "empty axis",
    ),
    "missing scale": (
        lambda t: [write_zarr(t / "noscale.zarr", np.zeros((2, 8, 8), np.uint16))],
        "--scale",
    ),
    "zero scale": (
        lambda t: [write_zarr(t / "s0.zarr", np.zeros((2, 8, 8), np.uint16)), "--scale", 0, 1, 1],
        "positive",
    ),
    "negative scale": (
        lambda t: [write_zarr(t / "s1.zarr", np.zeros((2, 8, 8), np.uint16)), "--scale", 1, -1, 1],
        "positive",
    ),
    "NaN scale": (
        lambda t: [
            write_zarr(t / "s2.zarr", np.zeros((2, 8, 8), np.uint16)),
            "--scale",
            "nan",
            1,
            1,
        ],
        "positive",
    ),
    "min radius >= max radius": (
        lambda t: [
            write_zarr(t / "r.zarr", np.zeros((2, 8, 8), np.uint16)),
            *SCALE_ARGS,
            "--min-radius",
            5,
            "--max-radius",
            5,
        ],
        "smaller than --max-radius",
    ),
    "zero min radius": (
        lambda t: [
            write_zarr(t / "r0.zarr", np.zeros((2, 8, 8), np.uint16)),
            *SCALE_ARGS,
            "--min-radius",
            0,
        ],
        "--min-radius must be a positive",
    ),
    "negative smooth radius": (
        lambda t: [
            write_zarr(t / "sr.zarr", np.zeros((2, 8, 8), np.uint16)),
            *SCALE_ARGS,
            "--smooth-radius=-1",
        ],
        "--smooth-radius must be a positive",
    ),
    "zero chunk size": (
        lambda t: [
            write_zarr(t / "ch.zarr", np.zeros((2, 8, 8), np.uint16)),
            *SCALE_ARGS,
            "--chunks",
            "0,8,8",
        ],
        "--chunks",
    ),
    "pickle codec": (None, "pickle codec"),
    "object dtype (vlen-utf8 strings)": (None, "stores objects"),
}


def _object_zarr(tmp):
    path = tmp / "strings.zarr"
    path.mkdir()
    (path / ".zarray").write_text(
        json.dumps(
            {
                "zarr_format": 2,
                "shape": [2, 4, 4],
                "chunks": [2, 4, 4],
                "dtype": "|O",
                "compressor": None,
                "fill_value": None,
                "filters": [{"id": "vlen-utf8"}],
                "order": "C",
            }
        )
    )
    return path


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_sentence_exit_2(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    builder, message = BAD_INPUTS[case]
    marker = tmp_path / "pickle-ran"
    if case == "pickle codec":
        argv = [_pickle_zarr(tmp_path, marker), *SCALE_ARGS]
    elif case.startswith("object dtype"):
        argv = [_object_zarr(tmp_path), *SCALE_ARGS]
    else:
        argv = builder(tmp_path)
    code = main(["segment", *map(str, argv), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err, err
    assert err.startswith("bigseg: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists() and not scratch_path(tmp_path / "out").exists()
    assert not marker.exists()  # the pickle payload never ran


def test_unreadable_file(tmp_path, tiff):
    path = tmp_path / "secret.tif"
    path.write_bytes(tiff.read_bytes())
    path.chmod(0)
    if os.access(path, os.R_OK):
        pytest.skip("running as root: chmod 000 does not stop root from reading")
    with pytest.raises(InputError, match="Could not read"):
        open_stack(path, scale=SCALE)


def test_codec_check_reads_codecs_not_attribute_text(tmp_path):
    # The old check refused any array whose metadata *text* mentioned "pickle" or "object".
    path = write_zarr(tmp_path / "a.zarr", np.ones((2, 8, 8), np.uint16))
    arr = zarr.open_array(path, mode="r+")
    arr.attrs["note"] = 'converted without pickle; "object" detection by vlen'
    stack = open_stack(path, scale=SCALE)
    assert stack.dtype == np.uint16
    assert bigseg.io.zarr._unsafe_reason({"codecs": [{"name": "bytes"}, {"name": "zstd"}]}) is None
    sharded = {
        "codecs": [
            {"name": "sharding_indexed", "configuration": {"codecs": [{"name": "vlen-utf8"}]}}
        ]
    }
    assert "objects" in bigseg.io.zarr._unsafe_reason(sharded)


def test_corrupt_zarr_chunk_names_array_and_chunk(tmp_path):
    stack, _ = synthetic(shape=(4, 48, 48), nuclei=2, seed=3)
    path = write_zarr(tmp_path / "c.zarr", stack.values, chunks=(1, 48, 48))
    (path / "c" / "2" / "0" / "0").write_bytes(b"not a zstd frame" * 8)
    with pytest.raises(InputError, match=r"Chunk \(2, 0, 0\) of the Zarr array .*c\.zarr"):
        run(path, tmp_path / "out", scale=SCALE)
    assert not (tmp_path / "out").exists()
    # Through the CLI the error is raised inside a worker process and still prints one sentence.
    proc = cli(
        "segment", path, "-o", tmp_path / "out", *SCALE_ARGS, "--workers", 1, "--no-progress"
    )
    assert proc.returncode == 2, proc.stderr
    assert "Chunk (2, 0, 0) of the Zarr array" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr


def test_missing_zarr_chunk_reads_as_fill_value(tmp_path):
    stack, _ = synthetic(shape=(4, 48, 48), nuclei=2, seed=3)
    path = write_zarr(tmp_path / "m.zarr", stack.values, chunks=(1, 48, 48))
    (path / "c" / "1" / "0" / "0").unlink()
    opened = open_stack(path, scale=SCALE)
    expected = stack.values.copy()
    expected[1] = 0  # the array's fill value
    np.testing.assert_array_equal(opened.values, expected)
    # The run reads the fill value there too: what it measures in plane 1 is 0.  (The
    # default method smooths in 3D, so a nucleus of planes 0 and 2 may have a detection in
    # plane 1, of zero intensity; the seed preset, which looks at each plane alone, has none.)
    result = run(path, tmp_path / "out", scale=SCALE)
    in_gap = result.detections["z"] == 1
    assert (result.detections.loc[in_gap, "intensity_sum"] == 0).all()
    assert (result.detections.loc[~in_gap, "intensity_sum"] > 0).all() and (~in_gap).any()
    seed = run(path, tmp_path / "seed", scale=SCALE, params=bigseg.Params.from_preset("seed"))
    assert (seed.detections["z"] != 1).all() and len(seed.detections)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_float_with_nan_or_inf_is_refused(bad, tmp_path):
    stack, _ = synthetic(shape=(4, 48, 48), nuclei=2, seed=3)
    data = stack.values.astype(np.float32)
    data[2, 10, 10] = bad
    data[3, 0, 0] = bad
    path = write_zarr(tmp_path / "f.zarr", data, chunks=(1, 48, 48))
    proc = cli(
        "segment", path, "-o", tmp_path / "out", *SCALE_ARGS, "--workers", 1, "--no-progress"
    )
    assert proc.returncode == 2, proc.stderr
    assert "has 2 NaN or infinite voxels" in proc.stderr and "nan_to_num" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert not (tmp_path / "out").exists()


def test_nonfinite_check_is_lazy():
    stack = bigseg.as_stack(np.zeros((3, 8, 8), np.float32), scale=SCALE)
    with raise_if_dask_computes():
        count = nonfinite_count(stack)
    assert int(count.compute()) == 0
    assert nonfinite_count(bigseg.as_stack(np.zeros((3, 8, 8), np.uint16), scale=SCALE)) is None


def test_chunks_smaller_than_the_filters_give_identical_results(tmp_path, stack_and_truth):
    # Planes are segmented whole (y/x chunks are merged first), so tiny chunks are valid.
    stack, _ = stack_and_truth
    whole = run(stack, tmp_path / "whole")
    tiny = run(stack.chunk({"z": 1, "y": 5, "x": 7}), tmp_path / "tiny")
    pd.testing.assert_frame_equal(whole.nuclei, tiny.nuclei)
    assert_same_outputs(tmp_path / "whole", tmp_path / "tiny")


@pytest.mark.parametrize("where", ["equal", "inside", "parent"])
def test_output_inside_or_equal_to_input_is_refused(where, tmp_path, capsys):
    image = write_zarr(tmp_path / "in.zarr", np.zeros((2, 8, 8), np.uint16))
    before = snapshot(image)
    out = {"equal": image, "inside": image / "out", "parent": tmp_path}[where]
    argv = ["segment", str(image), "-o", str(out), *SCALE_ARGS, "--overwrite"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert ("inside" in err or "contains the input" in err) and err.count("\n") == 1
    assert snapshot(image) == before


def test_existing_output_is_refused_and_untouched(tmp_path, tiff, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    before = snapshot(out)
    assert main(["segment", str(tiff), "-o", str(out), *SCALE_ARGS]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert snapshot(out) == before


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:9", "nonsense://where"])
def test_unreachable_scheduler(address, tmp_path, tiff, capsys):
    argv = ["segment", str(tiff), "-o", str(tmp_path / "o"), *SCALE_ARGS, "--scheduler", address]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Could not reach the dask scheduler" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- odd but valid


def test_2d_image(tmp_path, stack_and_truth):
    plane = stack_and_truth[0].values[5]
    tifffile.imwrite(tmp_path / "plane.tif", plane)
    result = run(tmp_path / "plane.tif", tmp_path / "out", scale=SCALE)
    assert len(result.nuclei) >= 1
    assert (result.nuclei["n_planes"] == 1).all()
    assert open_stack(tmp_path / "out" / "labels.zarr").shape == (1, *plane.shape)


def test_all_zero_stack_gives_empty_tables_with_columns(tmp_path):
    result = run(bigseg.as_stack(np.zeros((3, 32, 32), np.uint16), scale=SCALE), tmp_path / "o")
    nuclei = pd.read_parquet(tmp_path / "o" / "nuclei.parquet")
    detections = pd.read_parquet(tmp_path / "o" / "detections.parquet")
    assert len(nuclei) == 0 and list(nuclei.columns) == list(NUCLEUS_COLUMNS)
    assert len(detections) == 0
    assert list(detections.columns) == [*DETECTION_COLUMNS, "nucleus"]
    assert list(pd.read_csv(tmp_path / "o" / "nuclei.csv").columns) == list(NUCLEUS_COLUMNS)
    assert result.record["counts"]["nuclei"] == 0
    assert not open_stack(tmp_path / "o" / "labels.zarr").values.any()


@pytest.mark.parametrize("value,dtype", [(4095, np.uint16), (65535, np.uint16), (255, np.uint8)])
def test_all_saturated_stack(value, dtype, tmp_path):
    stack = bigseg.as_stack(np.full((2, 24, 24), value, dtype), scale=SCALE)
    result = run(stack, tmp_path / "o")
    # The default preset's floor is taken on the signal above the background map, of which a
    # constant stack has none: nothing is above it (its first histogram bin, one grey level of
    # 16 bits wide).
    width = (np.iinfo(dtype).max + 1) / 65536
    assert len(result.nuclei) == 0 and 0 < result.thresholds[0] <= width


def test_single_plane_stack(tmp_path, stack_and_truth):
    stack, _ = stack_and_truth
    result = run(stack.isel(z=slice(5, 6)), tmp_path / "o")
    assert len(result.nuclei) >= 1 and set(result.detections["z"]) == {0.0}


@pytest.mark.parametrize(
    "kind", ["uint8", "uint12", "uint16 full range", "int16", "float32", "float16"]
)
def test_bit_depths_and_float(kind, tmp_path):
    stack, truth = synthetic(shape=(6, 80, 80), nuclei=3, seed=5)
    raw = stack.values  # 12-bit values in uint16
    data = {
        "uint8": lambda: (raw >> 4).astype(np.uint8),
        "uint12": lambda: raw,
        "uint16 full range": lambda: (raw.astype(np.uint32) * 16).astype(np.uint16),
        "int16": lambda: raw.astype(np.int16),
        "float32": lambda: raw.astype(np.float32) / 4095,
        "float16": lambda: (raw.astype(np.float32) / 4095).astype(np.float16),
    }[kind]()
    path = write_zarr(tmp_path / "in.zarr", data, chunks=(1, 80, 80))
    result = run(path, tmp_path / "o", scale=SCALE)
    assert bigseg.score(result.nuclei, truth).f1 == 1.0


# --------------------------------------------------------------------------- faults

SEED = bigseg.Params.from_preset("seed")


@pytest.fixture(scope="module")
def fault_input(tmp_path_factory):
    """A stack of 24 single-plane blocks (so a run has many tasks) and its reference output.

    Runs on it ask for those blocks (``FAULT_CHUNKS``): left to itself bigseg merges such
    tiny storage chunks into a few work blocks.
    """
    root = tmp_path_factory.mktemp("faults")
    stack, _ = synthetic(shape=(24, 128, 128), nuclei=12, seed=11)
    path = write_zarr(root / "in.zarr", stack.values, chunks=FAULT_CHUNKS)
    # The seed preset keeps one block per chunk; the default preset merges planes for its
    # z halo, which would leave too few tasks to interrupt between.
    run(path, root / "reference", scale=SCALE, params=SEED, chunks=FAULT_CHUNKS)
    return root, path


FAULT_CHUNKS = (1, 128, 128)
FAULT_CHUNKS_ARGS = ["--chunks", ",".join(map(str, FAULT_CHUNKS))]


@pytest.mark.slow
def test_killed_worker_run_completes_identically(fault_input, tmp_path):
    from distributed import Client, LocalCluster

    root, path = fault_input
    killed = []
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            memory_limit="1GiB",
        ) as cluster,
        Client(cluster) as client,
    ):
        pids = client.run(os.getpid)

        def kill_a_worker(futures):
            if killed or len(futures) < 10:  # only in the segment pass (one task per block)
                return
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                busy = [w for w, tasks in client.processing().items() if tasks]
                if busy:
                    break
                time.sleep(0.01)
            victim = busy[0] if busy else next(iter(pids))
            done = sum(f.done() for f in futures)
            os.kill(pids[victim], signal.SIGKILL)
            killed.append((victim, done, len(futures)))

        run(
            path,
            tmp_path / "out",
            scale=SCALE,
            chunks=FAULT_CHUNKS,
            params=SEED,
            client=client,
            progress=kill_a_worker,
        )
        after = client.run(os.getpid)
    assert killed, "the kill hook never ran"
    victim, done, total = killed[0]
    assert done < total  # the worker died mid-pass
    assert pids[victim] not in after.values()  # it really died (the nanny restarted it)
    assert_same_outputs(root / "reference", tmp_path / "out")


def _start(path, out, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "bigseg.cli", "segment", str(path), "-o", str(out), *SCALE_ARGS]
        + ["--workers", "1", "--threads-per-worker", "1", "--no-progress", "--preset", "seed"]
        + FAULT_CHUNKS_ARGS
        + list(map(str, extra)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _markers(out):
    blocks = scratch_path(out) / "blocks"
    return len(list(blocks.glob("*.parquet"))) if blocks.exists() else 0


def _wait_for(proc, condition, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_exits_cleanly_and_leaves_no_output(sig, fault_input, tmp_path):
    _, path = fault_input
    out = tmp_path / "out"
    proc = _start(path, out)
    assert _wait_for(proc, lambda: _markers(out) >= 2), proc.communicate()
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, stderr
    assert f"interrupted by {sig.name}" in stderr and "was not written" in stderr
    assert "Traceback" not in stderr, stderr
    assert not out.exists()
    assert not scratch_path(out).exists()  # without --resume nothing is kept
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_ctrl_c_to_the_whole_process_group(fault_input, tmp_path):
    # A terminal's Ctrl-C signals the worker processes too.
    _, path = fault_input
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bigseg.cli", "segment", str(path), "-o", str(out), *SCALE_ARGS]
        + ["--workers", "1", "--threads-per-worker", "1", "--no-progress", "--resume"]
        + ["--preset", "seed", *FAULT_CHUNKS_ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert _wait_for(proc, lambda: _markers(out) >= 2), proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "finished blocks are kept" in stderr, stderr
    assert not out.exists() and (scratch_path(out) / "INCOMPLETE").exists()


@pytest.mark.slow
def test_resume_after_random_interruptions_is_identical(fault_input, tmp_path):
    root, path = fault_input
    out = tmp_path / "out"
    rng = random.Random(20261127)
    total = 24
    seen = [0]
    # Random points: during start-up, at random block counts, and after the last block.
    plan = [("time", rng.uniform(0.0, 1.5))]
    plan += [("blocks", k) for k in sorted(rng.sample(range(1, total - 1), 3))]
    plan += [("blocks", total)]
    for i, (what, where) in enumerate(plan):
        proc = _start(path, out, "--resume")
        if what == "time":
            time.sleep(where)
        else:
            # Markers from earlier attempts persist: wait for this attempt's own progress.
            target = max(where, seen[-1] + 1)
            _wait_for(proc, lambda target=target: _markers(out) >= target)
            time.sleep(rng.uniform(0.0, 0.2))
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT if i % 2 else signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
        assert "Traceback" not in stderr, stderr
        if proc.returncode == 0 or out.exists():  # finished before the signal arrived
            assert proc.returncode in (0, -signal.SIGTERM), stderr  # (or during its exit)
            break
        if proc.returncode == -signal.SIGTERM:  # killed while Python was still importing
            assert what == "time" and not scratch_path(out).exists(), stderr
        else:
            assert proc.returncode in (130, 143), stderr
        assert not out.exists()  # never looks finished
        assert _markers(out) >= seen[-1]  # finished blocks are never lost
        seen.append(_markers(out))
    assert max(seen) > 0, f"no interruption happened after a block finished: {seen}"
    if not out.exists():
        proc = _start(path, out, "--resume")
        stdout, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 0, stderr
        assert "Resumed:" in stdout
    record = json.loads((out / "run.json").read_text())
    assert record["blocks"]["total"] == total and record["blocks"]["reused"] > 0
    assert not scratch_path(out).exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["nuclei.parquet", "nuclei.csv", "detections.parquet", "labels.zarr", "run.json"]
    )
    assert_same_outputs(root / "reference", out)


@pytest.mark.slow
def test_sigkill_then_resume_is_identical(fault_input, tmp_path):
    # SIGKILL runs no handler: the process, its cluster and its lock simply vanish.
    import fcntl

    import psutil

    root, path = fault_input
    out = tmp_path / "out"
    proc = _start(path, out, "--resume")
    assert _wait_for(proc, lambda: _markers(out) >= 3), proc.communicate()
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.kill()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, stderr
    _, alive = psutil.wait_procs(children, timeout=30)  # the workers die with their client
    assert not alive, alive
    assert not out.exists() and (scratch_path(out) / "INCOMPLETE").exists()
    kept = _markers(out)
    with open(scratch_path(out) / "LOCK", "a") as lock:  # flock died with its holder
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(lock, fcntl.LOCK_UN)
    proc = _start(path, out, "--resume")
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr
    assert "Resumed:" in stdout and "Traceback" not in stderr
    record = json.loads((out / "run.json").read_text())
    assert record["blocks"]["total"] == 24 and record["blocks"]["reused"] >= kept >= 3
    assert not scratch_path(out).exists()
    assert_same_outputs(root / "reference", out)


@pytest.mark.parametrize("preset", ["seed", "default"])
def test_resume_in_process_reuses_blocks(tmp_path, stack_and_truth, monkeypatch, preset):
    stack, _ = stack_and_truth
    stack = stack.chunk({"z": 2})
    params = bigseg.Params.from_preset(preset)
    reference = run(stack, tmp_path / "ref", params=params)
    total = reference.record["blocks"]["total"]  # the default preset merges planes for its halo
    assert total == 5 if preset == "seed" else total >= 2
    out = tmp_path / "out"
    import bigseg.pipeline.partitions as pipeline  # linking runs there, per partition

    real_link = pipeline.link

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "link", fail)
    with pytest.raises(KeyboardInterrupt):
        run(stack, out, resume=True, params=params)
    assert not out.exists() and _markers(out) == total
    # Without resume=True the partial results are not silently thrown away.
    with pytest.raises(InputError, match="resume=True"):
        run(stack, out, params=params)
    # With other parameters they are not reused.
    with pytest.raises(InputError, match="different params"):
        run(stack, out, resume=True, params=bigseg.Params.from_preset(preset, min_radius=3.0))
    monkeypatch.setattr(pipeline, "link", real_link)
    resumed = run(stack, out, resume=True, params=params)
    assert resumed.record["blocks"] == {"total": total, "reused": total}
    pd.testing.assert_frame_equal(resumed.nuclei, reference.nuclei)
    assert_same_outputs(tmp_path / "ref", out)


def test_resume_after_the_labels_were_written_is_identical(tmp_path, stack_and_truth, monkeypatch):
    """Interrupted after labels.zarr was written into the scratch directory: the rerun replaces
    that partial store (bigseg's own) instead of refusing it."""
    import bigseg.pipeline.runner as runner

    stack = stack_and_truth[0].chunk({"z": 2})
    reference = run(stack, tmp_path / "ref")
    out = tmp_path / "out"
    real = runner.write_record

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "write_record", interrupted)  # labels.zarr is written
    with pytest.raises(KeyboardInterrupt):
        run(stack, out, resume=True)
    assert (tmp_path / ".out.partial" / "labels.zarr" / "zarr.json").exists()
    monkeypatch.setattr(runner, "write_record", real)
    resumed = run(stack, out, resume=True)
    pd.testing.assert_frame_equal(resumed.nuclei, reference.nuclei)
    assert_same_outputs(tmp_path / "ref", out)


def test_disk_full_is_a_clear_error_and_input_untouched(tmp_path, tiff, monkeypatch):
    import errno

    before = snapshot(tiff)

    def full(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    with pytest.raises(InputError, match="No space left on device") as info:
        run(tiff, tmp_path / "out", scale=SCALE)
    assert "was not changed" in str(info.value)
    assert snapshot(tiff) == before
    assert not (tmp_path / "out").exists() and not scratch_path(tmp_path / "out").exists()


def test_read_only_output_location(tmp_path, tiff, capsys):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        if os.access(parent, os.W_OK):
            pytest.skip("running as root: a read-only mode does not stop root from writing")
        before = snapshot(tiff)
        assert main(["segment", str(tiff), "-o", str(parent / "out"), *SCALE_ARGS]) == 2
        assert "Cannot write" in capsys.readouterr().err
        assert snapshot(tiff) == before
    finally:
        parent.chmod(0o755)


def test_output_error_during_write_names_the_problem(tmp_path, tiff, monkeypatch):
    # Works as root too: the file system refuses a write in the middle of the run.
    import errno

    import bigseg.pipeline.scratch as resume

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), "labels.zarr/c/0/0/0")

    monkeypatch.setattr(resume, "_finish_block", read_only)
    with pytest.raises(InputError, match="Read-only file system"):
        run(tiff, tmp_path / "out", scale=SCALE)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- safety


def test_local_cluster_listens_only_on_localhost(tmp_path):

    import psutil

    from bigseg.cli import dask_client

    args = _two_worker_args()
    with dask_client(args) as client:
        assert client.dashboard_link.startswith("http://127.0.0.1:")
        me = psutil.Process()
        listening = []
        for proc in [me, *me.children(recursive=True)]:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    listening.append((proc.pid, conn.laddr.ip, conn.laddr.port))
    assert len({pid for pid, _, _ in listening}) >= 3  # scheduler process + 2 workers
    assert {ip for _, ip, _ in listening} == {"127.0.0.1"}, listening


def _two_worker_args():
    """The CLI's options for a local cluster of two single-threaded workers."""
    import argparse

    return argparse.Namespace(
        verbose=False,
        scheduler=None,
        workers=2,
        threads_per_worker=1,
        memory_limit="1GiB",
        quiet=True,
    )


def _sigint_ignored() -> bool:
    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_local_cluster_workers_get_the_safety_preload():
    # The preload is named by module (bigseg.pipeline.safety): the worker processes must
    # import it and run its dask_setup, which leaves Ctrl-C to the client.

    from bigseg.cli import dask_client

    args = _two_worker_args()
    with dask_client(args) as client:
        ignored = client.run(_sigint_ignored)
    assert len(ignored) == 2 and all(ignored.values()), ignored


@pytest.mark.slow
def test_inputs_are_never_modified(tmp_path, stack_and_truth):
    stack, _ = stack_and_truth
    tif = tmp_path / "in.tif"
    tifffile.imwrite(tif, stack.values)
    zpath = write_zarr(tmp_path / "in.zarr", stack.values, chunks=(2, 96, 96))
    before = {**snapshot(tif), **snapshot(zpath)}
    for src in (tif, zpath):
        proc = cli("segment", src, "-o", tmp_path / f"out-{src.suffix[1:]}", *SCALE_ARGS)
        assert proc.returncode == 0, proc.stderr
    assert {**snapshot(tif), **snapshot(zpath)} == before


def test_sigterm_is_handled_like_sigint_in_process(tmp_path, tiff, monkeypatch):
    # The handler raises in the main thread; main() reports it with the signal's exit code.
    import bigseg.cli as cli_module

    def fake_segment(args):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        return 0

    monkeypatch.setattr(cli_module, "_segment", fake_segment)
    old = signal.getsignal(signal.SIGTERM)
    code = main(["segment", str(tiff), "-o", str(tmp_path / "o")])
    assert code == 143
    assert signal.getsignal(signal.SIGTERM) == old  # restored
    assert threading.current_thread() is threading.main_thread()


@pytest.mark.filterwarnings("ignore:.*not proven identical to whole-plane segmentation:UserWarning")
@pytest.mark.parametrize("preset", ["seed", "default"])
def test_resume_of_split_planes_reuses_blocks(tmp_path, stack_and_truth, monkeypatch, preset):
    """Planes split into y/x blocks: each block leaves a marker; a resumed run is identical."""
    import bigseg.pipeline.partitions as pipeline  # linking runs there, per partition
    import bigseg.pipeline.scratch as scratch

    stack, _ = stack_and_truth
    stack = stack.chunk({"z": 5, "y": 48, "x": 48})
    params = bigseg.Params.from_preset(preset, min_radius=2.84, max_radius=9.0, smooth_radius=1.42)
    reference = run(stack, tmp_path / "ref", params=params)
    assert "stitching" in reference.record  # planes really split and stitched
    total = reference.record["blocks"]["total"]
    assert total >= 4

    def sides(out):
        return len(list((scratch_path(out) / "blocks").glob("*.side.npz")))

    out = tmp_path / "out"
    real_link = pipeline.link

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "link", fail)
    with pytest.raises(KeyboardInterrupt):
        run(stack, out, resume=True, params=params)
    assert not out.exists() and sides(out) == total
    monkeypatch.setattr(pipeline, "link", real_link)
    # Interrupted half-way through the segment pass: finished blocks are kept.
    real_finish = scratch._finish_side
    done = []

    def finish_some(*args, **kwargs):
        if len(done) >= total // 2:
            raise KeyboardInterrupt
        done.append(1)
        return real_finish(*args, **kwargs)

    for marker in (scratch_path(out) / "blocks").glob("*.side.npz"):
        marker.unlink()
    monkeypatch.setattr(scratch, "_finish_side", finish_some)
    with pytest.raises(KeyboardInterrupt):
        run(stack, out, resume=True, params=params)
    kept = sides(out)
    assert 0 < kept < total
    monkeypatch.setattr(scratch, "_finish_side", real_finish)
    resumed = run(stack, out, resume=True, params=params)
    assert resumed.record["blocks"]["total"] == total
    assert total > resumed.record["blocks"]["reused"] >= kept  # (tasks still running may add)
    assert resumed.record["stitching"] == reference.record["stitching"]
    pd.testing.assert_frame_equal(resumed.nuclei, reference.nuclei)
    assert_same_outputs(tmp_path / "ref", out)
    assert not scratch_path(out).exists()


@pytest.mark.filterwarnings("ignore:.*not proven identical to whole-plane segmentation:UserWarning")
def test_resume_refuses_split_planes_of_several_block_sizes(tmp_path, stack_and_truth):
    stack, _ = stack_and_truth
    stack = stack.chunk({"z": 5, "y": (40, 56), "x": 48})
    params = bigseg.Params.from_preset("seed", min_radius=2.84, max_radius=9.0, smooth_radius=1.42)
    with pytest.raises(InputError, match="blocks of one size"):
        run(stack, tmp_path / "out", resume=True, params=params)


def test_split_plane_markers_are_plain_arrays_read_without_unpickling(tmp_path):
    """A block's stitching record round-trips through its ``.npz`` marker, pickle refused."""
    from bigseg.chunked.stitch import Block
    from bigseg.pipeline.scratch import read_side, write_side
    from bigseg.tables import SUM_DTYPES, empty_sums

    rng = np.random.default_rng(0)
    sums = pd.DataFrame(
        {c: rng.integers(0, 50, 4).astype(d) for c, d in SUM_DTYPES.items()}
    ).astype(SUM_DTYPES)
    faces = {n: rng.integers(0, 9, (1, 3, 16)).astype(np.int32) for n in ("after_y", "first_x")}
    for record in (
        Block(
            (0, 1, 2, 3),
            7,
            (0, 5, 32, 48),
            None,
            sums=sums,
            beyond=2,
            after_x=None,
            first_y=None,
            **faces,
        ),
        Block((1, 0, 0, 0), 0, (1, 0, 0, 0), None, None, None, sums=empty_sums(), beyond=0),
    ):
        path = tmp_path / "0_0_0_0.side.npz"
        write_side(record, str(path))
        back = read_side(path)
        pd.testing.assert_frame_equal(back.sums, record.sums)
        for name in ("after_y", "after_x", "first_y", "first_x", "core"):
            if getattr(record, name) is None:
                assert getattr(back, name) is None
            else:
                np.testing.assert_array_equal(getattr(back, name), getattr(record, name))
                assert getattr(back, name).dtype == getattr(record, name).dtype
        assert (back.index, back.flat, back.origin, back.beyond) == (
            record.index,
            record.flat,
            record.origin,
            record.beyond,
        )
        with np.load(path, allow_pickle=False) as f:  # no object arrays inside
            assert all(f[name].dtype != object for name in f.files)
