"""`bigseg convert`: TIFF stacks to chunked OME-Zarr 0.5, streamed, resumable, with a pyramid."""

import hashlib
import json
import os
import tracemalloc

import numpy as np
import pytest
import tifffile
import zarr

from bigseg import InputError, open_stack
from bigseg.cli import main
from bigseg.io import convert as conv
from bigseg.io.convert import convert, storage_chunks

RNG = np.random.default_rng(17)


def _imagej(path, data, axes="ZYX"):
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.5, 1 / 0.5),
        metadata={"spacing": 1.5, "unit": "um", "axes": axes},
    )
    return path


def _digest(folder):
    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(folder)):
        dirs.sort()
        for name in sorted(files):
            h.update(name.encode())
            with open(os.path.join(root, name), "rb") as handle:
                h.update(handle.read())
    return h.hexdigest()


def test_chunks_are_near_equal_tiles_of_at_most_1024_px_and_a_few_planes():
    assert storage_chunks((256, 2048, 2048), ("z", "y", "x"), 2) == (8, 1024, 1024)
    assert storage_chunks((3, 40, 2500, 700), ("t", "z", "y", "x"), 2) == (1, 14, 834, 700)
    assert storage_chunks((1, 20_000, 20_000), ("z", "y", "x"), 2) == (1, 1000, 1000)
    assert storage_chunks((5, 64, 64), ("z", "y", "x"), 1) == (5, 64, 64)


def test_imagej_hyperstack_becomes_an_ome_zarr_image_with_its_scale_and_a_pyramid(
    tmp_path, monkeypatch
):
    pytest.importorskip("ome_zarr_models")
    from ome_zarr_models.v05.image import Image

    monkeypatch.setattr(conv, "TILE", 32)
    monkeypatch.setattr("bigseg.io.ngff.PYRAMID_TILE", 16)
    data = RNG.integers(0, 4000, (2, 5, 70, 50)).astype(np.uint16)
    source = _imagej(tmp_path / "hyper.tif", data, axes="TZYX")
    out = convert(source, tmp_path / "hyper.ome.zarr")
    stack = open_stack(out)
    assert stack.dims == ("t", "z", "y", "x")
    np.testing.assert_array_equal(stack.values, data)
    assert stack.attrs["scale"] == pytest.approx({"z": 1.5, "y": 0.5, "x": 0.5})
    group = zarr.open_group(out, mode="r")
    assert group["0"].shards == (1, 5, 24, 25)  # 70 px in 3 near-equal tiles
    assert group["0"].chunks == (1, 1, 24, 25)  # of one plane each
    Image.from_zarr(group)
    ms = group.attrs["ome"]["multiscales"][0]
    assert ms["type"] == "mean" and len(ms["datasets"]) == 4
    assert group["1"].shape == (2, 5, 35, 25)
    state = group.attrs["bigseg"]["convert"]
    assert state["complete"] and state["input"] == os.path.abspath(source)


def test_the_frame_interval_of_a_time_lapse_is_kept(tmp_path):
    # An ImageJ hyperstack's finterval becomes the OME-Zarr t scale, in seconds: the
    # converted input gives the same speeds (µm/min) as the TIFF (found by a new-user trial).
    data = np.arange(3 * 2 * 16 * 16, dtype=np.uint16).reshape(3, 2, 16, 16)
    source = tmp_path / "lapse.tif"
    meta = {"spacing": 1.5, "unit": "um", "axes": "TZYX", "finterval": 30}
    tifffile.imwrite(source, data, imagej=True, resolution=(2.0, 2.0), metadata=meta)
    assert open_stack(source).attrs["frame_interval_s"] == 30.0
    stack = open_stack(convert(source, tmp_path / "lapse.ome.zarr"))
    assert stack.attrs["frame_interval_s"] == 30.0
    assert stack.attrs["frame_interval_source"] == "ome-zarr:t-scale"


def test_a_folder_of_tiff_planes_converts_along_z(tmp_path):
    folder = tmp_path / "planes"
    folder.mkdir()
    data = RNG.integers(0, 255, (4, 20, 30)).astype(np.uint8)
    for i, plane in enumerate(data):
        tifffile.imwrite(folder / f"p{i:02d}.tif", plane)
    out = convert(folder, tmp_path / "p.ome.zarr", files_axis="z", scale=(2, 0.4, 0.4))
    np.testing.assert_array_equal(open_stack(out).values, data)
    assert open_stack(out).attrs["scale"] == pytest.approx({"z": 2, "y": 0.4, "x": 0.4})


class Stopped(Exception):
    """The conversion stopped half way (as by Ctrl-C or a killed process)."""


def test_an_interrupted_conversion_continues_where_it_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(conv, "CHUNK_BYTES", 16 * 16)  # one plane a slab
    data = RNG.integers(0, 60000, (6, 16, 16)).astype(np.uint16)
    source = _imagej(tmp_path / "s.tif", data)
    out = tmp_path / "s.ome.zarr"
    calls = []
    resumed = False
    real = conv.da.store

    def store(*args, **kwargs):
        if kwargs.get("regions") is None:  # the writer's own (not computed) store of level 0
            return real(*args, **kwargs)
        calls.append(kwargs["regions"])
        if len(calls) == 3 and not resumed:
            raise Stopped
        return real(*args, **kwargs)

    monkeypatch.setattr(conv.da, "store", store)
    with pytest.raises(Stopped):
        convert(source, out, pyramid=False)
    state = zarr.open_group(out, mode="r").attrs["bigseg"]["convert"]
    assert state["slabs_done"] == 2 and not state["complete"]
    calls.clear()
    resumed = True
    convert(source, out, pyramid=False)
    assert [r[0] for r in calls] == [slice(z, z + 1) for z in range(2, 6)]  # the rest only
    np.testing.assert_array_equal(open_stack(out).values, data)
    with pytest.raises(InputError, match="finished conversion"):
        convert(source, out, pyramid=False)


@pytest.mark.parametrize("case", ["input", "inside", "foreign", "settings"])
def test_outputs_that_are_not_an_unfinished_conversion_are_refused_untouched(tmp_path, case):
    data = RNG.integers(0, 255, (2, 8, 8)).astype(np.uint8)
    folder = tmp_path / "in"
    folder.mkdir()
    source = _imagej(folder / "s.tif", data)
    if case == "input":
        out = source
    elif case == "inside":  # a folder of planes is the input: nothing is written into it
        source = folder
        out = folder / "s.ome.zarr"
    elif case == "foreign":
        out = tmp_path / "mine"
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    else:
        out = tmp_path / "s.ome.zarr"
        convert(source, out, pyramid=False)
    before = _digest(tmp_path)
    message = {
        "input": "never writes over its input",
        "inside": "never writes over its input",
        "foreign": "not a conversion that bigseg began",
        "settings": r"other settings \(scale_um, pyramid\)",
    }[case]
    with pytest.raises(InputError, match=message):
        convert(source, out, scale=(3, 1, 1))
    assert _digest(tmp_path) == before


def test_conversion_streams_a_slab_at_a_time(tmp_path, monkeypatch):
    """A 64 MiB TIFF of 32 pages goes through a quarter of its size (numpy's allocations)."""
    monkeypatch.setattr(conv, "CHUNK_BYTES", 2 * 2**20)  # one 1024² uint16 plane a chunk
    source = tmp_path / "big.tif"
    with tifffile.TiffWriter(source) as tif:
        for z in range(32):
            plane = np.full((1024, 1024), z * 100, np.uint16)
            plane[z * 10 : z * 10 + 50, 100:300] = 4000
            tif.write(plane, contiguous=True, photometric="minisblack")
    tracemalloc.start()
    out = convert(source, tmp_path / "big.ome.zarr", scale=(2, 1, 1), threads=2)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 16 * 2**20, f"{peak / 2**20:.1f} MiB"
    stack = open_stack(out)
    assert stack.shape == (32, 1024, 1024)
    assert int(stack[31, 320, 150]) == 4000 and int(stack[5, 0, 0]) == 500


def test_cli_converts_and_segment_suggests_it_for_a_large_untiled_tiff(
    tmp_path, capsys, monkeypatch
):
    data = RNG.integers(0, 255, (3, 16, 16)).astype(np.uint8)
    source = _imagej(tmp_path / "s.tif", data)
    assert main(["convert", str(source), str(tmp_path / "s.ome.zarr"), "-q"]) == 0
    assert capsys.readouterr().out == ""
    np.testing.assert_array_equal(open_stack(tmp_path / "s.ome.zarr").values, data)
    assert main(["convert", str(source), str(source)]) == 2
    assert "never writes over its input" in capsys.readouterr().err
    assert main(["convert", str(source), "s3://bucket/s.ome.zarr"]) == 2
    assert "writes to a local path" in capsys.readouterr().err
    monkeypatch.setattr(conv, "HINT_BYTES", 100)
    taken = tmp_path / "taken"  # an output segment refuses: it stops right after the note
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    assert main(["segment", str(source), "-o", str(taken)]) == 2
    err = capsys.readouterr().err
    assert f"bigseg convert {source} s.ome.zarr" in err and "already exists" in err
    tiled = tmp_path / "tiled.tif"
    tifffile.imwrite(
        tiled, np.zeros((4, 32, 32), np.uint8), tile=(16, 16), photometric="minisblack"
    )
    assert conv.convert_hint(tiled, 10**10) is None
    assert json.loads((tmp_path / "s.ome.zarr" / "zarr.json").read_text())["attributes"]["ome"]


def test_inner_chunks_divide_their_shard():
    from bigseg.io.ngff import shard_chunks

    assert shard_chunks((1, 8, 1024, 1024), (1, 1, 256, 256)) == (1, 1, 256, 256)
    assert shard_chunks((14, 834, 700), (1, 256, 256)) == (1, 139, 175)  # 834 = 6 x 139
    assert shard_chunks((4, 1021, 200), (1, 256, 256)) == (1, 1021, 200)  # a prime side stays
    assert shard_chunks((1, 64, 64), (1, 256, 256)) is None  # one chunk a shard: no shards


def _sharded_and_plain(tmp_path, monkeypatch):
    monkeypatch.setattr(conv, "TILE", 64)
    monkeypatch.setattr(conv, "CHUNK_BYTES", 4 * 64 * 64 * 2)  # 4 planes a chunk
    monkeypatch.setattr(conv, "INNER", {"t": 1, "z": 1, "y": 32, "x": 32})
    monkeypatch.setattr("bigseg.io.ngff.PYRAMID_TILE", 32)
    data = RNG.integers(0, 4000, (12, 128, 192)).astype(np.uint16)
    source = _imagej(tmp_path / "s.tif", data)
    sharded = convert(source, tmp_path / "sharded.ome.zarr", threads=4)
    plain = convert(source, tmp_path / "plain.ome.zarr", shards=False, threads=4)
    return data, sharded, plain


def test_chunks_are_shards_of_planes_unless_asked_not(tmp_path, monkeypatch):
    """One file per shard, as many as the plain chunks; every level and value the same."""
    reader = pytest.importorskip("ome_zarr.reader")
    from ome_zarr.io import parse_url
    from ome_zarr_models.v05.image import Image

    data, sharded, plain = _sharded_and_plain(tmp_path, monkeypatch)
    s, p = zarr.open_group(sharded, mode="r"), zarr.open_group(plain, mode="r")
    assert (s["0"].shards, s["0"].chunks) == ((4, 64, 64), (1, 32, 32))
    assert (p["0"].shards, p["0"].chunks) == (None, (4, 64, 64))
    assert s.attrs["bigseg"]["convert"]["shards"] == [1, 32, 32]
    assert p.attrs["bigseg"]["convert"]["shards"] is False
    levels = [d["path"] for d in s.attrs["ome"]["multiscales"][0]["datasets"]]
    assert len(levels) == 4  # 128 x 192, 64 x 96, 32 x 48, 16 x 24
    for level in levels:  # built by tasks that each wrote whole shards: nothing lost
        np.testing.assert_array_equal(s[level][...], p[level][...])
        files = sorted(f.name for f in (sharded / level / "c").rglob("*") if f.is_file())
        assert len(files) == len(list((plain / level / "c").rglob("*/*/*"))) > 0
    assert s["1"].shards is not None or s["1"].chunks == s["1"].shape
    stack = open_stack(sharded)
    np.testing.assert_array_equal(stack.values, data)
    assert stack.data.chunksize == (4, 64, 64)  # bigseg's storage chunks are the shards
    Image.from_zarr(s)
    (node,) = [n for n in reader.Reader(parse_url(str(sharded)))() if n.load(reader.Multiscales)]
    np.testing.assert_array_equal(np.asarray(node.data[0]), data)
    assert [tuple(a.shape) for a in node.data] == [tuple(s[lv].shape) for lv in levels]
    with pytest.raises(InputError, match=r"other settings \(shards\)"):
        convert(tmp_path / "s.tif", plain)  # a plain conversion is not continued sharded


def test_a_conversion_begun_before_shards_continues_plain(tmp_path, monkeypatch):
    monkeypatch.setattr(conv, "CHUNK_BYTES", 16 * 16)  # one plane a slab
    data = RNG.integers(0, 60000, (4, 16, 16)).astype(np.uint16)
    source = _imagej(tmp_path / "s.tif", data)
    out = convert(source, tmp_path / "s.ome.zarr", shards=False, pyramid=False)
    state = dict(zarr.open_group(out, mode="r").attrs["bigseg"]["convert"])
    del state["shards"]  # as an earlier bigseg recorded it, two slabs in
    conv._record(out, {**state, "slabs_done": 2, "complete": False})
    with pytest.raises(InputError, match=r"other settings \(shards\)"):
        convert(source, out, pyramid=False)
    convert(source, out, shards=False, pyramid=False)
    np.testing.assert_array_equal(open_stack(out).values, data)


def test_a_read_of_part_of_a_shard_decodes_only_its_inner_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(conv, "CHUNK_BYTES", 4 * 512 * 512 * 2)  # 2 MiB shards of 4 planes
    monkeypatch.setattr(conv, "INNER", {"t": 1, "z": 1, "y": 64, "x": 64})  # 8 KiB inside
    data = RNG.integers(0, 4000, (8, 512, 512)).astype(np.uint16)
    source = _imagej(tmp_path / "s.tif", data)
    part = (5, slice(70, 80), slice(100, 110))  # 10 x 10 px of one plane
    peaks = {}
    for name, shards in (("sharded", True), ("plain", False)):
        stack = open_stack(convert(source, tmp_path / f"{name}.ome.zarr", shards=shards))
        assert stack.data.chunksize == (4, 512, 512)
        tracemalloc.start()
        values = stack.data[part].compute(scheduler="synchronous")
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        np.testing.assert_array_equal(values, data[part])
    shard = 4 * 512 * 512 * 2
    assert peaks["plain"] > shard > 8 * peaks["sharded"], peaks


def test_a_sharded_conversion_segments_as_the_plain_one(tmp_path, monkeypatch):
    from bigseg.pipeline import run
    from bigseg.synth import synth

    monkeypatch.setattr(conv, "TILE", 48)  # planes split in 2 x 2 shards of 16² inner chunks
    monkeypatch.setattr(conv, "INNER", {"t": 1, "z": 1, "y": 16, "x": 16})
    image, _ = synth(tmp_path / "s.ome.zarr", shape=(8, 96, 96), nuclei=6, seed=2)
    found = {}
    for name, shards in (("sharded", True), ("plain", False)):
        out = convert(image, tmp_path / f"{name}.ome.zarr", shards=shards, pyramid=False)
        found[name] = run(out, tmp_path / f"{name}-out").nuclei
    assert len(found["plain"]) > 0
    columns = ["z", "y", "x", "volume_um3", "intensity_mean"]
    np.testing.assert_allclose(found["sharded"][columns], found["plain"][columns])
