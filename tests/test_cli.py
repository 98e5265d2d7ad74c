import json
import subprocess
import sys

import pandas as pd
import pytest

from bigseg.cli import main

from .conftest import DASHBOARD, data_file


def bigseg(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "bigseg.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    bigseg("synth", root / "s.ome.zarr", "--shape", 10, 96, 96, "--nuclei", 6, "--seed", 1)
    proc = bigseg(
        "segment",
        root / "s.ome.zarr",
        "-o",
        root / "out",
        "--workers",
        2,
        "--threads-per-worker",
        1,
        "--memory-limit",
        "1GiB",
    )
    return root, proc


def test_segment_on_local_cluster(demo):
    root, proc = demo
    assert DASHBOARD in proc.stdout
    assert "Found 6 nuclei" in proc.stdout
    assert "Traceback" not in proc.stderr
    record = json.loads((root / "out" / "run.json").read_text())
    assert record["counts"]["nuclei"] == 6


def test_score_and_plot(demo):
    root, _ = demo
    proc = bigseg("score", root / "out" / "nuclei.parquet", root / "s_truth.csv", "--json")
    assert json.loads(proc.stdout)["f1"] == 1.0
    bigseg("plot", root / "out")
    assert (root / "out" / "projections.png").stat().st_size > 10_000
    assert bigseg("plot", root / "out", "-q").stdout == ""  # -q as segment takes it
    proc = bigseg("plot", root / "out", "--t", 5, check=False)
    assert proc.returncode == 2 and "this run has time points 0." in proc.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["segment", "missing.tif", "-o", "x"], "does not exist"),
        (["segment", "{seed}", "-o", "x"], "--scale"),
        (["segment", "{seed}", "-o", "x", "--scale", "1", "0", "1"], "positive"),
        (
            [
                "segment",
                "{seed}",
                "-o",
                "x",
                "--scale",
                "1.5",
                ".71",
                ".71",
                "--min-radius",
                "9",
                "--max-radius",
                "3",
            ],
            "smaller than --max-radius",
        ),
        (
            ["segment", "{seed}", "-o", "x", "--scale", "1.5", ".71", ".71", "--chunks", "1,2"],
            "three",
        ),
    ],
)
def test_bad_input_is_one_sentence_exit_2(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "{seed}" in args:
        args = [str(data_file("seed/test_nuclei_stack.tif")) if a == "{seed}" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_unreachable_scheduler(tmp_path, capsys):
    image = tmp_path / "s.ome.zarr"
    assert main(["synth", str(image), "--shape", "2", "16", "16", "--nuclei", "0"]) == 0
    code = main(
        ["segment", str(image), "-o", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:9"]
    )
    assert code == 2
    assert "Could not reach the dask scheduler" in capsys.readouterr().err


def test_existing_output_refused_before_work(demo, capsys):
    root, _ = demo
    before = pd.read_parquet(root / "out" / "nuclei.parquet")
    assert main(["segment", str(root / "s.ome.zarr"), "-o", str(root / "out")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    pd.testing.assert_frame_equal(before, pd.read_parquet(root / "out" / "nuclei.parquet"))


@pytest.mark.parametrize(("workers", "memory_limit"), [(1, "auto"), (1, "1GiB"), (2, "1GiB")])
def test_local_cluster_listens_only_on_localhost(workers, memory_limit):
    import argparse
    import os

    import psutil

    from bigseg.cli import dask_client

    args = argparse.Namespace(
        verbose=False,
        scheduler=None,
        threads_per_worker=1,
        workers=workers,
        memory_limit=memory_limit,
        quiet=True,
    )
    with dask_client(args) as client:
        assert client.submit(sum, [1, 2]).result() == 3
        # One worker runs in this process unless it has a memory limit of its own: the
        # limit must count the worker's memory, not this process's (client included).
        pids = set(client.run(os.getpid).values())
        assert (pids == {os.getpid()}) == (workers == 1 and memory_limit == "auto"), pids
        assert client.dashboard_link.startswith("http://127.0.0.1:")
        procs = [psutil.Process(), *psutil.Process().children(recursive=True)]
        addresses = {
            c.laddr.ip
            for p in procs
            for c in p.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
    assert addresses and addresses <= {"127.0.0.1"}, addresses


def test_workers_dying_is_one_sentence(monkeypatch, capsys):
    from distributed.scheduler import KilledWorker

    import bigseg.cli as cli

    def dying(args):
        raise KilledWorker(("_smooth_block-abc", 0, 3, 0, 0), None, 3)

    monkeypatch.setattr(cli, "_segment", dying)
    assert main(["segment", "in.zarr", "-o", "out"]) == 1
    err = capsys.readouterr().err
    assert "workers kept dying" in err and "--memory-limit" in err and err.count("\n") == 1


@pytest.mark.parametrize("limit", ["100MB", "200MiB", "0.000001"])
def test_a_memory_limit_too_small_for_a_worker_is_one_sentence(tmp_path, capsys, limit):
    # Below what a worker process holds once its libraries are loaded, its nanny restarts it
    # for ever, without a word: refused before any cluster starts or output is written.
    from bigseg.synth import synth

    image, _ = synth(tmp_path / "in.ome.zarr", shape=(4, 32, 32), nuclei=1)
    out = tmp_path / "out"
    assert main(["segment", str(image), "-o", str(out), "--memory-limit", limit, "-q"]) == 2
    err = capsys.readouterr().err
    assert "--memory-limit" in err and "at least 300MB" in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize(
    ("cores", "workers", "threads", "expected"),
    [
        (2, 2, None, (2, 1)),  # was 2 x 2 threads on 2 cores
        (8, 2, None, (2, 4)),
        (2, 4, None, (4, 1)),
        (2, None, None, (1, 2)),
        (1, None, None, (1, 1)),
        (16, None, None, (8, 2)),
        (4, None, 1, (4, 1)),
        (4, 2, 3, (2, 3)),
    ],
)
def test_threads_per_worker_default_to_cores_per_worker(cores, workers, threads, expected):
    from bigseg.cli import cluster_shape

    assert cluster_shape(cores, workers, threads) == expected


def test_two_workers_on_two_cores_get_one_thread_each(monkeypatch):
    """`--workers 2` on a 2-core machine: 2 threads in all, not 2 x 2."""
    import argparse

    import bigseg.cli as cli

    monkeypatch.setattr(cli.os, "cpu_count", lambda: 2)
    args = argparse.Namespace(
        verbose=False,
        scheduler=None,
        threads_per_worker=None,
        workers=2,
        memory_limit="1GiB",
        quiet=True,
    )
    with cli.dask_client(args) as client:
        assert sorted(client.nthreads().values()) == [1, 1]


def test_dashboard_line_names_bokeh_when_the_page_would_only_ask_for_it(monkeypatch):
    from bigseg.pipeline import sink

    link = "http://127.0.0.1:8787/status"
    monkeypatch.setattr(sink.importlib.util, "find_spec", lambda name: None)
    assert sink.dashboard_text(link) == "dask's dashboard needs bokeh (pip install 'bokeh>=3.1')"
    monkeypatch.setattr(sink.importlib.util, "find_spec", lambda name: object())
    assert sink.dashboard_text(link) == f"dashboard {link}"


def test_the_libraries_are_imported_without_the_collector_and_frozen():
    import gc

    from bigseg.cli import _long_lived_imports

    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    try:
        with pytest.raises(KeyboardInterrupt), _long_lived_imports():
            assert not gc.isenabled()
            made = [[i] for i in range(1000)]
            raise KeyboardInterrupt  # Ctrl-C during an import
        # Re-enabled whatever happened inside; what was made inside is frozen.
        assert gc.isenabled() and gc.get_freeze_count() >= frozen + len(made)
    finally:
        gc.unfreeze()
        gc.enable()
