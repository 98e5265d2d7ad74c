"""A real dask cluster on loopback: one `dask scheduler`, two `dask worker` processes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bigseg import Params, open_stack, run
from bigseg.synth import synth

pytestmark = pytest.mark.slow


def _dask_command(*args):
    exe = Path(sys.executable).parent / "dask"
    if exe.exists():
        return [str(exe), *args]
    return [sys.executable, "-m", "distributed.cli.dask_" + args[0], *args[1:]]


def _wait_for(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Start a scheduler and two single-threaded workers bound to 127.0.0.1."""
    from distributed import Client

    root = tmp_path_factory.mktemp("cluster")
    info = root / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    logs = [open(root / f"{name}.log", "w") for name in ("scheduler", "worker1", "worker2")]  # noqa: SIM115
    procs = [
        subprocess.Popen(
            _dask_command(
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(info),
            ),
            stdout=logs[0],
            stderr=subprocess.STDOUT,
            env=env,
        )
    ]
    try:
        _wait_for(info.exists, "the scheduler file")
        _wait_for(lambda: info.stat().st_size > 0, "the scheduler address")
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for log in logs[1:]:
            procs.append(
                subprocess.Popen(
                    _dask_command(
                        "worker",
                        address,
                        "--host",
                        "127.0.0.1",
                        "--no-dashboard",
                        "--nthreads",
                        "1",
                        "--memory-limit",
                        "1GiB",
                    ),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
            hosts = [w.split("://")[1].split(":")[0] for w in client.scheduler_info()["workers"]]
            assert hosts == ["127.0.0.1", "127.0.0.1"]
        yield address, procs, root
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    image, _ = synth(root / "s.ome.zarr", shape=(10, 200, 190), nuclei=14, t=2, seed=5)
    return image


def _bigseg(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "bigseg.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.parametrize("chunks", [None, "2,100,100"])
def test_segment_on_an_existing_cluster_equals_local(cluster, sample, tmp_path, chunks):
    address, _, _ = cluster
    extra = ["--chunks", chunks] if chunks else []
    proc = _bigseg("segment", sample, "-o", tmp_path / "remote", "--scheduler", address, *extra)
    assert "Traceback" not in proc.stderr
    stack = open_stack(sample)
    if chunks:
        stack = stack.chunk({"z": 2, "y": 100, "x": 100})
    local = run(stack, tmp_path / "local", params=Params.from_preset("default"))
    remote = pd.read_parquet(tmp_path / "remote" / "nuclei.parquet")
    pd.testing.assert_frame_equal(remote, local.nuclei, check_exact=False, rtol=1e-10)
    assert len(remote) > 10
    np.testing.assert_array_equal(
        open_stack(tmp_path / "remote" / "labels.zarr").values,
        open_stack(tmp_path / "local" / "labels.zarr").values,
    )
    record = json.loads((tmp_path / "remote" / "run.json").read_text())
    assert ("stitching" in record) == bool(chunks)


def test_unreachable_scheduler_is_one_sentence(sample, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bigseg.cli",
            "segment",
            str(sample),
            "-o",
            str(tmp_path / "out"),
            "--scheduler",
            "tcp://127.0.0.1:9",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Could not reach the dask scheduler" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_cluster_shuts_down_cleanly(cluster):
    _, procs, root = cluster
    for proc in reversed(procs):
        proc.send_signal(signal.SIGINT)
    codes = [proc.wait(timeout=60) for proc in procs]
    assert codes == [0, 0, 0], [(root / f).read_text()[-2000:] for f in os.listdir(root)]
