"""labels.zarr is a valid OME-Zarr 0.5 label image that viewers overlay on the image."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bigseg
from bigseg import InputError, open_stack
from bigseg.colours import label_rgba
from bigseg.io import MAX_LISTED_LABELS, write_labels
from bigseg.pipeline import run
from bigseg.synth import synth

SPACE_UNITS = {"nanometer", "micrometer", "millimeter", "meter"}
INTEGER_TYPES = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64"}


def check_ngff_05_image(group: Path, *, label: bool = False) -> dict:
    """Check the rules of the OME-Zarr 0.5 spec (multiscales, axes, image-label) by hand."""
    meta = json.loads((group / "zarr.json").read_text())
    assert meta["zarr_format"] == 3 and meta["node_type"] == "group"
    ome = meta["attributes"]["ome"]
    assert ome["version"] == "0.5"
    assert isinstance(ome["multiscales"], list) and ome["multiscales"]
    for ms in ome["multiscales"]:
        axes = ms["axes"]
        names = [a["name"] for a in axes]
        types = [a.get("type") for a in axes]
        assert 2 <= len(axes) <= 5 and len(set(names)) == len(names)
        assert 2 <= types.count("space") <= 3 and types.count("time") <= 1
        order = {"time": 0, "channel": 1, "space": 2}
        assert [order[t] for t in types] == sorted(order[t] for t in types)
        for a in axes:
            if a.get("type") == "space":
                assert a["unit"] in SPACE_UNITS
        assert ms["datasets"]
        for ds in ms["datasets"]:
            transforms = ds["coordinateTransformations"]
            assert transforms[0]["type"] == "scale"
            assert [t["type"] for t in transforms[1:]] in ([], ["translation"])
            for tf in transforms:
                assert len(tf[tf["type"]]) == len(axes)
                assert all(isinstance(v, float | int) for v in tf[tf["type"]])
            assert all(v > 0 for v in transforms[0]["scale"])
            array = json.loads((group / ds["path"] / "zarr.json").read_text())
            assert array["node_type"] == "array"
            assert array["dimension_names"] == names
            assert len(array["shape"]) == len(axes)
            if label:
                assert array["data_type"] in INTEGER_TYPES
    if label:
        il = ome["image-label"]
        for key in ("colors", "properties"):
            if key in il:  # optional, but never an empty list (minItems 1)
                entries = il[key]
                assert entries and all(isinstance(e["label-value"], int) for e in entries)
                assert len({e["label-value"] for e in entries}) == len(entries)
        for c in il.get("colors", []):
            assert len(c["rgba"]) == 4 and all(0 <= v <= 255 for v in c["rgba"])
            assert all(isinstance(v, int) for v in c["rgba"])
        if "source" in il:
            assert isinstance(il["source"], dict)
            if "image" in il["source"]:
                assert not os.path.isabs(il["source"]["image"])
    return meta


@pytest.fixture(scope="module")
def series_output(tmp_path_factory):
    root = tmp_path_factory.mktemp("ngff")
    image, _ = synth(root / "ts.ome.zarr", shape=(6, 64, 64), nuclei=3, t=2, seed=5)
    result = run(image, root / "out")
    return image, result


def test_run_writes_a_valid_label_image_pointing_at_its_image(series_output):
    image, result = series_output
    labels = result.labels_path
    meta = check_ngff_05_image(labels, label=True)
    check_ngff_05_image(Path(image))
    il = meta["attributes"]["ome"]["image-label"]
    # source.image is relative to the label group and leads to the input image.
    assert (labels / il["source"]["image"]).resolve() == Path(image).resolve()
    assert meta["attributes"]["bigseg"]["source"] == str(image)
    # The label image lines up with the image: same axes and transformations.
    image_ms = json.loads((Path(image) / "zarr.json").read_text())["attributes"]["ome"]
    label_ms = meta["attributes"]["ome"]["multiscales"][0]
    assert label_ms["axes"] == image_ms["multiscales"][0]["axes"]
    assert (
        label_ms["datasets"][0]["coordinateTransformations"]
        == image_ms["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    )


def test_every_nucleus_has_its_plot_colour_and_properties(series_output):
    _, result = series_output
    il = json.loads((result.labels_path / "zarr.json").read_text())["attributes"]["ome"][
        "image-label"
    ]
    nuclei = result.nuclei
    ids = [c["label-value"] for c in il["colors"]]
    assert ids == nuclei["nucleus"].tolist()
    np.testing.assert_array_equal([c["rgba"] for c in il["colors"]], label_rgba(ids))
    props = pd.DataFrame(il["properties"]).set_index("label-value")
    np.testing.assert_allclose(props["volume_um3"], nuclei["volume_um3"], atol=1e-3)
    np.testing.assert_array_equal(props["t"], nuclei["t"].astype(int))
    # Every id in the volume is listed.
    present = np.unique(open_stack(result.labels_path).values)
    assert set(present) - {0} <= set(ids)


def test_labels_without_table_or_with_too_many_nuclei_list_nothing(tmp_path):
    labels = bigseg.as_stack(np.zeros((2, 4, 4), np.uint32), scale=(2, 0.5, 0.5))
    write_labels(labels, tmp_path / "a.zarr")
    il = check_ngff_05_image(tmp_path / "a.zarr", label=True)["attributes"]["ome"]["image-label"]
    assert "colors" not in il and "properties" not in il and "source" not in il
    many = pd.DataFrame({"nucleus": np.arange(1, MAX_LISTED_LABELS + 2), "t": 0.0})
    write_labels(labels, tmp_path / "b.zarr", nuclei=many)
    il = check_ngff_05_image(tmp_path / "b.zarr", label=True)["attributes"]["ome"]["image-label"]
    assert "colors" not in il


def test_source_that_is_not_an_ome_zarr_image_is_not_linked(tmp_path):
    plain = tmp_path / "plain.zarr"
    import zarr

    zarr.create_array(plain, shape=(2, 4, 4), dtype="uint16")
    labels = bigseg.as_stack(np.zeros((2, 4, 4), np.uint32), scale=(2, 0.5, 0.5))
    write_labels(labels, tmp_path / "l.zarr", source=str(plain))
    meta = check_ngff_05_image(tmp_path / "l.zarr", label=True)
    assert "source" not in meta["attributes"]["ome"]["image-label"]
    assert meta["attributes"]["bigseg"]["source"] == str(plain)


def test_float_labels_are_refused(tmp_path):
    labels = bigseg.as_stack(np.zeros((2, 4, 4), np.float32), scale=(2, 0.5, 0.5))
    with pytest.raises(InputError, match="integer dtype"):
        write_labels(labels, tmp_path / "l.zarr")


def test_ome_zarr_reader_sees_labels_and_image_when_installed(series_output):
    """napari's ome-zarr reader (optional): labels at the image's scale, image found via source."""
    reader = pytest.importorskip("ome_zarr.reader")
    from ome_zarr.io import parse_url

    image, result = series_output
    nodes = list(reader.Reader(parse_url(str(result.labels_path)))())
    label_nodes = [n for n in nodes if n.load(reader.Label)]
    assert len(label_nodes) == 1
    node = label_nodes[0]
    scale = node.metadata["coordinateTransformations"][0][0]["scale"]
    assert scale == [1.0, 1.5, 0.71, 0.71]
    assert node.metadata["color"][1] == pytest.approx(list(label_rgba([1])[0] / 255))
    images = [n for n in nodes if not n.load(reader.Label) and n.data]
    assert images and images[0].data[0].shape == open_stack(image).shape


def test_ome_zarr_models_validate_image_and_labels_when_installed(series_output):
    """The OME-Zarr 0.5 reference models (optional) accept the label image and the image."""
    pytest.importorskip("ome_zarr_models")
    import zarr
    from ome_zarr_models.v05.image import Image
    from ome_zarr_models.v05.image_label import ImageLabel

    image, result = series_output
    ImageLabel.from_zarr(zarr.open_group(result.labels_path, mode="r"))
    Image.from_zarr(zarr.open_group(image, mode="r"))


@pytest.mark.parametrize("what", ["folder", "file", "zarr"])
def test_writers_never_replace_what_they_did_not_write(tmp_path, what):
    """write_labels / write_ngff_image over an existing path: refused, or (a Zarr store and
    overwrite=True) replaced; a user's folder or file is never deleted."""
    import hashlib

    import zarr

    target = tmp_path / "data"
    if what == "folder":
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    elif what == "file":
        target.write_bytes(b"precious")
    else:
        zarr.create_array(target, shape=(2, 2), dtype="u2")[...] = 7
    before = {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in ([target] if target.is_file() else target.rglob("*"))
        if p.is_file()
    }
    labels = bigseg.as_stack(np.ones((2, 4, 4), np.uint32), scale=(2, 0.5, 0.5))
    with pytest.raises(InputError, match="already exists"):
        write_labels(labels, target)
    if what == "zarr":
        write_labels(labels, target, overwrite=True)
        assert zarr.open_group(target, mode="r")["0"].shape == (2, 4, 4)
        return
    with pytest.raises(InputError, match="not a Zarr store; it was left untouched"):
        write_labels(labels, target, overwrite=True)
    after = {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in ([target] if target.is_file() else target.rglob("*"))
        if p.is_file()
    }
    assert after == before


def test_writers_accept_an_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    labels = bigseg.as_stack(np.ones((2, 4, 4), np.uint32), scale=(2, 0.5, 0.5))
    write_labels(labels, tmp_path / "empty")
    assert (tmp_path / "empty" / "zarr.json").exists()


# --- The label pyramid --------------------------------------------------------------------------


def test_a_4_x_2048_squared_stack_gets_three_levels_and_z_halves_once_xy_catch_up():
    from bigseg.io.ngff import pyramid_plan

    scale = {"z": 1.5, "y": 0.71, "x": 0.71}
    levels = pyramid_plan((4, 2048, 2048), ("z", "y", "x"), scale, (4, 2048, 2048))
    assert [lv["shape"] for lv in levels] == [(4, 2048, 2048), (4, 1024, 1024), (2, 512, 512)]
    assert [lv["factors"] for lv in levels] == [(1, 1, 1), (1, 2, 2), (2, 2, 2)]
    assert levels[2]["scale"] == pytest.approx({"z": 3.0, "y": 2.84, "x": 2.84})
    assert all(max(lv["chunks"][1:]) <= 1024 for lv in levels[1:])
    assert levels[-1]["chunks"] == (2, 512, 512)  # the last level fits one chunk
    # Time is never downsampled; one plane is never halved in z; odd sizes round up.
    four = pyramid_plan((3, 1, 1025, 600), ("t", "z", "y", "x"), scale, (1, 1, 256, 256))
    assert [lv["shape"] for lv in four] == [(3, 1, 1025, 600), (3, 1, 513, 300), (3, 1, 257, 150)]
    assert all(lv["factors"][:2] == (1, 1) for lv in four)
    # Already one tile: level 0 only.
    assert len(pyramid_plan((2, 300, 500), ("z", "y", "x"), scale, (2, 300, 500))) == 1


def test_label_levels_are_level_0_downsampled_by_nearest_neighbour(tmp_path, monkeypatch):
    import dask.array as da
    import zarr

    from bigseg.io import ngff

    monkeypatch.setattr(ngff, "PYRAMID_TILE", 16)
    rng = np.random.default_rng(0)
    values = rng.integers(0, 50, size=(2, 5, 70, 45), dtype=np.uint32)
    labels = bigseg.as_stack(da.from_array(values, chunks=(1, 2, 32, 32)), scale=(1.5, 0.71, 0.71))
    write_labels(labels, tmp_path / "l.zarr")
    meta = check_ngff_05_image(tmp_path / "l.zarr", label=True)
    ms = meta["attributes"]["ome"]["multiscales"][0]
    assert ms["type"] == "nearest" and [d["path"] for d in ms["datasets"]] == ["0", "1", "2", "3"]
    group = zarr.open_group(tmp_path / "l.zarr", mode="r")
    expected = values
    previous = None
    for ds in ms["datasets"]:
        level_scale = ds["coordinateTransformations"][0]["scale"]
        if previous is not None:
            factors = [round(a / b) for a, b in zip(level_scale, previous)]
            expected = expected[tuple(slice(None, None, f) for f in factors)]
        np.testing.assert_array_equal(group[ds["path"]][...], expected)
        previous = level_scale
    assert group["2"].shape == (2, 3, 18, 12)  # z halved from level 2 on: 5 -> 3 -> 2
    assert group["3"].shape == (2, 2, 9, 6)
    assert open_stack(tmp_path / "l.zarr").shape == values.shape  # readers take level 0


@pytest.mark.parametrize("inner", [None, (1, 1, 8, 8)])
def test_levels_from_level_0_s_blocks_are_the_levels_built_from_the_stored_ones(
    tmp_path, monkeypatch, inner
):
    """nearest_levels (one graph with level 0's store) against pyramid_levels (read back)."""
    import dask
    import dask.array as da
    import zarr

    from bigseg.io import ngff

    monkeypatch.setattr(ngff, "PYRAMID_TILE", 8)
    values = np.random.default_rng(1).integers(0, 9, size=(2, 5, 67, 45), dtype=np.uint32)
    data = da.from_array(values, chunks=(1, 2, 32, 16))
    paths = {}
    for name in ("stored", "fused"):
        paths[name] = tmp_path / f"{name}.zarr"
        store = ngff.write_ngff_image(
            data, paths[name], dims=("t", "z", "y", "x"), scale={"z": 1.5, "y": 0.71, "x": 0.71},
            compute=False, pyramid="nearest", inner_chunks=inner,
        )  # fmt: skip
        if name == "stored":
            store.compute()
            for level in ngff.pyramid_levels(paths[name]):
                level.compute()
        else:
            levels = ngff.nearest_levels(data, paths[name])
            graph = {k for d in (store, *levels) for k in dict(d.__dask_graph__())}
            assert not any("zarr" in dask.utils.key_split(k) for k in graph)  # nothing read back
            dask.compute(store, *levels)
    stored, fused = (zarr.open_group(paths[n], mode="r") for n in ("stored", "fused"))
    assert len(list(stored.array_keys())) == 5  # 67 x 45 px: 34, 17, 9 and 5 rows
    for key in stored.array_keys():
        np.testing.assert_array_equal(fused[key][...], stored[key][...])


def test_an_image_s_mean_pyramid_is_not_taken_from_level_0_in_one_step(tmp_path):
    import dask.array as da

    from bigseg.io import ngff

    data = da.zeros((1, 1, 8, 1100), np.uint16, chunks=(1, 1, 8, 550))
    ngff.write_ngff_image(
        data, tmp_path / "i.zarr", dims=("t", "z", "y", "x"), scale=dict.fromkeys("zyx", 1.0),
        pyramid="mean", create_only=True,
    )  # fmt: skip
    with pytest.raises(ValueError, match="no nearest-neighbour pyramid"):
        ngff.nearest_levels(data, tmp_path / "i.zarr")


def test_mean_pyramid_of_an_image_averages_and_keeps_the_dtype(tmp_path, monkeypatch):
    import dask.array as da
    import zarr

    from bigseg.io import ngff

    monkeypatch.setattr(ngff, "PYRAMID_TILE", 4)
    values = np.arange(3 * 9 * 8, dtype=np.uint16).reshape(1, 3, 9, 8) * 3
    ngff.write_ngff_image(
        da.from_array(values, chunks=(1, 1, 4, 4)),
        tmp_path / "i.zarr",
        dims=("t", "z", "y", "x"),
        scale={"z": 0.71, "y": 0.71, "x": 0.71},
        pyramid="mean",
    )
    level1 = zarr.open_group(tmp_path / "i.zarr", mode="r")["1"][...]
    assert level1.dtype == np.uint16 and level1.shape == (1, 2, 5, 4)  # isotropic: z halves too
    padded = np.pad(values.astype(np.float64), [(0, 0), (0, 1), (0, 1), (0, 0)], mode="edge")
    mean = padded.reshape(1, 2, 2, 5, 2, 4, 2).mean(axis=(2, 4, 6))
    np.testing.assert_array_equal(level1, np.round(mean).astype(np.uint16))


def _level_positions(transforms, shape):
    """The physical centre of every voxel of a level, per axis, as its NGFF transforms say."""
    scale = transforms[0]["scale"]
    shift = transforms[1]["translation"] if len(transforms) > 1 else [0.0] * len(scale)
    return [o + s * np.arange(n) for o, s, n in zip(shift, scale, shape)]


@pytest.mark.parametrize("how", ["mean", "nearest"])
def test_every_level_s_voxels_lie_where_their_values_come_from(tmp_path, monkeypatch, how):
    """NGFF puts voxel i at translation + i * scale, its centre: a mean lies at its block's
    middle, a nearest-neighbour voxel at the voxel it copies."""
    import dask.array as da
    import zarr

    from bigseg.io import ngff

    monkeypatch.setattr(ngff, "PYRAMID_TILE", 8)
    scale = {"z": 0.5, "y": 0.4, "x": 0.4}  # near isotropic: z halves too
    origin = {"z": 3.0, "y": -2.0, "x": 10.0}
    shape = (8, 32, 64)
    axes = [origin[d] + scale[d] * np.arange(n) for d, n in zip("zyx", shape)]
    if how == "mean":  # a ramp in µm: the mean of a block is the ramp at the block's middle
        z, y, x = np.meshgrid(*axes, indexing="ij")
        values = (1.0 * z + 2.0 * y - 0.5 * x).astype(np.float64)
    else:  # every voxel's own number: a copy says where it came from
        values = np.arange(np.prod(shape), dtype=np.uint32).reshape(shape)
    ngff.write_ngff_image(
        da.from_array(values, chunks=(4, 16, 16)),
        tmp_path / "i.zarr",
        dims=("z", "y", "x"),
        scale=scale,
        translation=origin,
        pyramid=how,
    )
    group = zarr.open_group(tmp_path / "i.zarr", mode="r")
    datasets = group.attrs["ome"]["multiscales"][0]["datasets"]
    assert len(datasets) == 4
    for ds in datasets:
        level = group[ds["path"]][...]
        zc, yc, xc = _level_positions(ds["coordinateTransformations"], level.shape)
        if how == "mean":
            z, y, x = np.meshgrid(zc, yc, xc, indexing="ij")  # the sums are float32
            np.testing.assert_allclose(level, 1.0 * z + 2.0 * y - 0.5 * x, atol=1e-5)
        else:
            index = [(c - origin[d]) / scale[d] for c, d in zip((zc, yc, xc), "zyx")]
            assert all(np.allclose(i, np.round(i)) for i in index)  # on level 0's voxels
            picked = values[np.ix_(*(np.round(i).astype(int) for i in index))]
            np.testing.assert_array_equal(level, picked)
    first = datasets[0]["coordinateTransformations"][1]["translation"]
    assert first == [origin[d] for d in "zyx"]  # level 0 keeps the image's origin


def test_building_the_pyramid_holds_a_few_chunks_not_the_level(tmp_path):
    import tracemalloc

    import dask
    import dask.array as da

    from bigseg.io.ngff import pyramid_levels

    plane = np.zeros((1, 8, 1024, 1024), np.uint32)  # 32 MiB at level 0
    plane[0, :, 100:300, 200:500] = 7
    labels = bigseg.as_stack(da.from_array(plane, chunks=(1, 1, 256, 256)), scale=(1, 1, 1))
    store = write_labels(labels, tmp_path / "l.zarr", compute=False)
    store.compute()
    del plane, labels, store
    tracemalloc.start()
    with dask.config.set(scheduler="synchronous"):
        for level in pyramid_levels(tmp_path / "l.zarr"):
            level.compute()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * 2**20, f"{peak / 2**20:.1f} MiB"
    assert open_stack(tmp_path / "l.zarr").shape == (1, 8, 1024, 1024)


@pytest.fixture(scope="module")
def pyramid_output(tmp_path_factory):
    from bigseg.io import ngff

    root = tmp_path_factory.mktemp("pyramid")
    image, _ = synth(root / "big.ome.zarr", shape=(6, 96, 96), nuclei=6, t=2, seed=3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ngff, "PYRAMID_TILE", 24)
        result = run(image, root / "out")
    return image, result


def test_run_writes_a_label_pyramid_that_ome_zarr_reads_and_validates(pyramid_output):
    reader = pytest.importorskip("ome_zarr.reader")
    import zarr
    from ome_zarr.io import parse_url
    from ome_zarr_models.v05.image_label import ImageLabel

    image, result = pyramid_output
    check_ngff_05_image(result.labels_path, label=True)
    ImageLabel.from_zarr(zarr.open_group(result.labels_path, mode="r"))
    nodes = list(reader.Reader(parse_url(str(result.labels_path)))())
    (node,) = [n for n in nodes if n.load(reader.Label)]
    assert [a.shape for a in node.data] == [(2, 6, 96, 96), (2, 6, 48, 48), (2, 3, 24, 24)]
    full = open_stack(result.labels_path).values
    np.testing.assert_array_equal(np.asarray(node.data[2]), full[:, ::2, ::4, ::4])
    assert node.metadata["color"]  # the image-label colours are still there
    # The nuclei table and the labels agree, and the figures still read level 0.
    nuclei = pd.read_parquet(result.output / "nuclei.parquet")
    assert set(np.unique(full)) - {0} == set(nuclei["nucleus"])


def test_napari_layers_hand_napari_the_label_pyramid(pyramid_output):
    from bigseg.plots import napari_layers

    _, result = pyramid_output
    (_, _, image_kind), (levels, kwargs, kind), *_ = napari_layers(result.output)
    assert (image_kind, kind) == ("image", "labels") and kwargs["multiscale"]
    assert [level.shape for level in levels] == [(2, 6, 96, 96), (2, 6, 48, 48), (2, 3, 24, 24)]
    np.testing.assert_array_equal(levels[0].compute(), open_stack(result.labels_path).values)


def test_a_long_label_listing_is_written_once_as_zarr_writes_it(tmp_path):
    import tracemalloc

    import dask.array as da
    import xarray as xr
    import zarr

    n = MAX_LISTED_LABELS
    rng = np.random.default_rng(0)
    nuclei = pd.DataFrame(
        {
            "nucleus": np.arange(1, n + 1),
            "t": np.repeat(np.arange(n // 5), 5),
            **{c: rng.random(n) * 100 for c in ("z_um", "y_um", "x_um", "intensity_mean")},
            "volume_um3": np.where(rng.random(n) < 0.1, np.nan, rng.random(n) * 100),
            "radius_um": rng.random(n) * 5,
            "n_planes": np.full(n, 3),
        }
    )
    labels = xr.DataArray(
        da.zeros((n // 5, 3, 32, 32), chunks=(1, 3, 32, 32), dtype="uint32"),
        dims=("t", "z", "y", "x"),
        attrs={"scale": {"z": 1.5, "y": 0.7, "x": 0.7}},
    )
    tracemalloc.start()
    try:
        write_labels(labels, tmp_path / "labels.zarr", nuclei=nuclei, source="x", create_only=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    written = (tmp_path / "labels.zarr" / "zarr.json").read_bytes()
    # The same bytes as zarr's own writer gives for the same attributes ...
    attributes = json.loads(written)["attributes"]
    group = zarr.open_group(os.fspath(tmp_path / "by_zarr.zarr"), mode="w", zarr_format=3)
    group.attrs.update(attributes)
    assert (tmp_path / "by_zarr.zarr" / "zarr.json").read_bytes() == written
    assert len(attributes["ome"]["image-label"]["colors"]) == n
    # ... for a fraction of its memory: zarr encodes a deep copy at once (~45 MB traced
    # here, and every array created under the group read the listing again).
    assert peak < 5 * len(written)
    assert list(bigseg.io.pyramid_levels(tmp_path / "labels.zarr")) == []


def test_every_chunk_is_written_as_it_comes_empty_ones_included(tmp_path):
    """Zarr would compare each chunk with 0 first (two thirds of a label chunk's write)."""
    import dask.array as da
    import zarr

    from bigseg.io import writable

    values = np.zeros((4, 32, 32), np.uint32)
    values[0, 5:9, 5:9] = 3  # one chunk of two holds a label, the other none
    labels = bigseg.as_stack(da.from_array(values, chunks=(2, 32, 32)), scale=(1, 1, 1))
    write_labels(labels, tmp_path / "l.zarr")
    level0 = zarr.open_array(tmp_path / "l.zarr" / "0", mode="r")
    assert level0.nchunks_initialized == level0.nchunks == 2
    again = writable(tmp_path / "l.zarr" / "0")
    again[2:4] = 0
    assert again.nchunks_initialized == 2 and not again[2:4].any()
