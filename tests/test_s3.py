"""Inputs and outputs on S3, against moto's S3 server on 127.0.0.1 (started here)."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import bigseg
from bigseg import InputError, open_stack, run
from bigseg.synth import synth

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on loopback with a bucket holding one synthetic stack."""
    import s3fs

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir("bucket")
        root = tmp_path_factory.mktemp("s3")
        image, truth = synth(root / "s.ome.zarr", shape=(8, 96, 96), nuclei=5, seed=3)
        fs.put(str(image), "bucket/s.ome.zarr", recursive=True)
        yield {"fs": fs, "env": env, "local": image, "truth": pd.read_csv(truth)}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def test_open_stack_from_s3(s3):
    remote = open_stack("s3://bucket/s.ome.zarr")
    local = open_stack(s3["local"])
    assert remote.attrs["scale"] == local.attrs["scale"]
    np.testing.assert_array_equal(remote.values, local.values)


def test_missing_remote_input_is_one_sentence(s3):
    with pytest.raises(InputError, match="Could not open"):
        open_stack("s3://bucket/nothing.zarr")
    with pytest.raises(InputError, match="TIFF inputs must be local"):
        open_stack("s3://bucket/stack.tif")


def test_run_from_s3_to_s3_equals_local(s3, tmp_path):
    result = run("s3://bucket/s.ome.zarr", "s3://bucket/out/")
    local = run(s3["local"], tmp_path / "local")
    fs = s3["fs"]
    fs.invalidate_cache()
    names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls("bucket/out"))
    assert names == sorted(
        ["nuclei.parquet", "nuclei.csv", "detections.parquet", "labels.zarr", "run.json"]
    )
    nuclei = pd.read_parquet("s3://bucket/out/nuclei.parquet")
    pd.testing.assert_frame_equal(nuclei, local.nuclei)
    pd.testing.assert_frame_equal(result.nuclei, local.nuclei)
    np.testing.assert_array_equal(
        open_stack("s3://bucket/out/labels.zarr").values,
        open_stack(tmp_path / "local" / "labels.zarr").values,
    )
    record = json.loads(fs.cat("bucket/out/run.json"))
    assert record["counts"]["nuclei"] == len(local.nuclei) == 5
    # An existing output is refused, then replaced with --overwrite.
    with pytest.raises(InputError, match="--overwrite"):
        run("s3://bucket/s.ome.zarr", "s3://bucket/out")
    run("s3://bucket/s.ome.zarr", "s3://bucket/out", overwrite=True)
    assert fs.exists("bucket/out/run.json")


def test_overwrite_keeps_objects_bigseg_did_not_write(s3):
    """The local rule on object stores: a prefix holding anything else is refused, untouched."""
    fs = s3["fs"]
    run("s3://bucket/s.ome.zarr", "s3://bucket/mine/run1")
    fs.pipe_file("bucket/mine/notes.txt", b"my notes")
    fs.invalidate_cache()
    before = {key: fs.cat_file(key) for key in fs.find("bucket/mine")}
    with pytest.raises(InputError, match="'notes.txt'.*'run1'.*did not write"):
        run("s3://bucket/s.ome.zarr", "s3://bucket/mine", overwrite=True)
    fs.pipe_file("bucket/mine/run1/analysis.ipynb", b"{}")
    with pytest.raises(InputError, match="'analysis.ipynb'"):
        run("s3://bucket/s.ome.zarr", "s3://bucket/mine/run1", overwrite=True)
    fs.invalidate_cache()
    after = {key: fs.cat_file(key) for key in fs.find("bucket/mine")}
    assert after.pop("bucket/mine/run1/analysis.ipynb") == b"{}"
    assert after == before


def test_failed_remote_run_leaves_nothing(s3, monkeypatch):
    import bigseg.pipeline as pipeline

    def boom(*args, **kwargs):
        raise RuntimeError("network on fire")

    monkeypatch.setattr(pipeline, "nuclei_table", boom)
    with pytest.raises(RuntimeError, match="network on fire"):
        run("s3://bucket/s.ome.zarr", "s3://bucket/failed")
    s3["fs"].invalidate_cache()
    assert not s3["fs"].exists("bucket/failed")


def test_cli_with_s3_input_and_output_on_a_local_cluster(s3):
    proc = subprocess.run(
        [
            sys.executable, "-m", "bigseg.cli", "segment", "s3://bucket/s.ome.zarr",
            "-o", "s3://bucket/cli-out/", "--workers", "1", "--threads-per-worker", "1",
            "--no-progress",
        ],
        capture_output=True, text=True, timeout=300, env={**os.environ, **s3["env"]},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Found 5 nuclei" in proc.stdout
    nuclei = pd.read_parquet("s3://bucket/cli-out/nuclei.parquet")
    assert bigseg.score(nuclei, s3["truth"]).f1 == 1.0
