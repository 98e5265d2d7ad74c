"""Inputs and outputs on S3, against moto's S3 server on 127.0.0.1 (started here)."""

import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pytest

import bigseg
import bigseg.pipeline.partitions as partitions
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


def test_run_from_s3_to_s3_equals_local(s3, tmp_path, monkeypatch):
    def gathered(*args, **kwargs):
        raise AssertionError("the detections were gathered on the client")

    # the workers write each block's detections to the output's prefix, read back there
    with monkeypatch.context() as m:
        m.setattr(partitions, "detections_of_frames", gathered)
        m.setattr(partitions, "split_by_t", gathered)
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
    # An existing output is refused, then replaced with overwrite=True.
    with pytest.raises(InputError, match="overwrite=True"):
        run("s3://bucket/s.ome.zarr", "s3://bucket/out")
    run("s3://bucket/s.ome.zarr", "s3://bucket/out", overwrite=True)
    assert fs.exists("bucket/out/run.json")


def test_a_series_tracked_on_s3_equals_local(s3, tmp_path):
    """Tracking writes and reads its parts on the object store, and leaves no scratch."""
    from bigseg.synth import synth as make

    image, _ = make(tmp_path / "ts.ome.zarr", shape=(6, 64, 64), nuclei=4, t=3, seed=5,
                    motion_um=1.0)  # fmt: skip
    fs = s3["fs"]
    fs.put(str(image), "bucket/ts.ome.zarr", recursive=True)
    result = run("s3://bucket/ts.ome.zarr", "s3://bucket/tracked/", track_labels=True)
    local = run(image, tmp_path / "local", track_labels=True)
    fs.invalidate_cache()
    names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls("bucket/tracked"))
    assert "tracks.parquet" in names and "tracking" not in names
    pd.testing.assert_frame_equal(result.nuclei, local.nuclei)
    assert result.nuclei["track_id"].nunique() < len(result.nuclei)  # nuclei were linked
    pd.testing.assert_frame_equal(
        pd.read_parquet("s3://bucket/tracked/tracks.parquet"), local.tracks
    )
    import zarr

    by_track = zarr.open_array("s3://bucket/tracked/track_labels.zarr/0", mode="r")[...]
    assert by_track.max() > 0
    np.testing.assert_array_equal(
        by_track, zarr.open_array(tmp_path / "local" / "track_labels.zarr" / "0", mode="r")[...]
    )


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
    import bigseg.pipeline.partitions as pipeline  # the nuclei table is built there

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


class FaultyProxy(http.server.ThreadingHTTPServer):
    """An HTTP proxy on 127.0.0.1 in front of moto that throttles or drops some requests.

    Of every ``every`` requests one is answered ``503 SlowDown`` (S3's throttling reply)
    and one has its connection dropped without an answer; the others are forwarded.
    """

    daemon_threads = True

    def __init__(self, upstream: str, every: int = 6):
        self.upstream = upstream.split("://", 1)[1]
        self.every = every
        self.count = 0
        self.throttled = 0
        self.dropped = 0
        self.forwarded = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self):
        server = self.server
        body = self._body()
        with server.lock:
            n = server.count
            server.count += 1
        if n % server.every == 2:
            with server.lock:
                server.throttled += 1
            reply = (
                b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
                b"<Message>Please reduce your request rate.</Message></Error>"
            )
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply)
            return
        if n % server.every == 4:
            with server.lock:
                server.dropped += 1
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
        headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(server.upstream, timeout=30)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            content = response.read()
        finally:
            conn.close()
        with server.lock:
            server.forwarded += 1
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        length = response.getheader("Content-Length")
        self.send_header("Content-Length", length if self.command == "HEAD" else str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


@pytest.fixture
def faulty_s3(s3, monkeypatch):
    """The moto server of ``s3`` reached through a :class:`FaultyProxy`."""
    import s3fs

    proxy = FaultyProxy(s3["env"]["AWS_ENDPOINT_URL"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        yield proxy
    finally:
        proxy.stop()
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.mark.slow
def test_transient_s3_errors_are_retried_with_identical_results(s3, faulty_s3, tmp_path):
    result = run("s3://bucket/s.ome.zarr", "s3://bucket/faulty/")
    labels = open_stack("s3://bucket/faulty/labels.zarr").values
    nuclei = pd.read_parquet("s3://bucket/faulty/nuclei.parquet")
    assert faulty_s3.throttled > 0 and faulty_s3.dropped > 0, vars(faulty_s3)
    local = run(s3["local"], tmp_path / "local")
    pd.testing.assert_frame_equal(result.nuclei, local.nuclei)
    pd.testing.assert_frame_equal(nuclei, local.nuclei)
    np.testing.assert_array_equal(labels, open_stack(tmp_path / "local" / "labels.zarr").values)


def test_s3_requests_are_retried_with_backoff(s3):
    import pickle

    from bigseg.io.objstore import S3_RETRIES, Remote

    expected = {"mode": S3_RETRIES["mode"], "total_max_attempts": S3_RETRIES["max_attempts"] + 1}
    remote = Remote("s3://bucket/s.ome.zarr")
    stack = open_stack("s3://bucket/s.ome.zarr")
    chunks = next(v for v in dict(stack.data.__dask_graph__()).values() if hasattr(v, "array"))
    worker_copy = pickle.loads(pickle.dumps(chunks)).array.store.fs  # what a dask worker gets
    remote.fs.ls("bucket")  # connects
    assert remote.fs.s3._client_config.retries == expected
    for fs in (pickle.loads(pickle.dumps(remote.fs)), worker_copy):
        retries = fs.config_kwargs["retries"]  # botocore rewrites max_attempts in place
        assert retries in (S3_RETRIES, expected), retries
