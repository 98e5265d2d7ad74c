import json
import pickle

import numpy as np
import pytest
import tifffile
import zarr

import bigseg
from bigseg import InputError, open_stack
from bigseg.io import parse_chunks, write_ngff_image

from .conftest import data_file, raise_if_dask_computes

RNG = np.random.default_rng(0)
DATA3 = RNG.integers(0, 4000, (5, 12, 14)).astype(np.uint16)


def _coords_ok(stack, scale, translation=(0, 0, 0)):
    for name, step, origin in zip("zyx", scale, translation):
        n = stack.sizes[name]
        np.testing.assert_allclose(stack[name].values, origin + step * np.arange(n))
    assert stack.attrs["scale"] == pytest.approx(dict(zip("zyx", scale)))


def test_plain_tiff_needs_scale(tmp_path):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, DATA3)
    with pytest.raises(InputError, match=r"scale=\(z, y, x\)"):
        open_stack(path)
    stack = open_stack(path, scale=(2, 0.5, 0.5))
    assert stack.dims == ("z", "y", "x") and stack.dtype == np.uint16
    _coords_ok(stack, (2, 0.5, 0.5))
    np.testing.assert_array_equal(stack.values, DATA3)


def test_tiff_is_lazy_and_chunked_by_page(tmp_path):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, DATA3)
    with raise_if_dask_computes():
        stack = open_stack(path, scale=(1, 1, 1))
    assert stack.data.chunks == ((1,) * 5, (12,), (14,))
    # Only the path travels to workers: the graph pickles.
    restored = pickle.loads(pickle.dumps(stack.data))
    np.testing.assert_array_equal(restored.compute(scheduler="processes"), DATA3)


def test_imagej_tiff_scale_from_metadata(tmp_path):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path,
        DATA3,
        imagej=True,
        resolution=(1 / 0.25, 1 / 0.25),
        metadata={"spacing": 1.5, "unit": "um", "axes": "ZYX"},
    )
    stack = open_stack(path)
    _coords_ok(stack, (1.5, 0.25, 0.25))
    assert stack.attrs["format"] == "imagej-tiff"
    assert open_stack(path, scale=(3, 0.25, 0.25)).attrs["scale"]["z"] == 3  # argument wins


def test_imagej_hyperstack_with_channels(tmp_path):
    data = RNG.integers(0, 255, (3, 4, 2, 10, 11)).astype(np.uint8)  # TZCYX
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(2.0, 2.0),
        metadata={"spacing": 2.0, "unit": "micron", "axes": "TZCYX"},
    )
    with pytest.raises(InputError, match="channel="):
        open_stack(path)
    stack = open_stack(path, channel=1)
    assert stack.dims == ("t", "z", "y", "x") and stack.shape == (3, 4, 10, 11)
    np.testing.assert_array_equal(stack.values, data[:, :, 1])
    _coords_ok(stack, (2.0, 0.5, 0.5))


def test_ome_tiff_scale(tmp_path):
    path = tmp_path / "a.ome.tif"
    tifffile.imwrite(
        path,
        DATA3,
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeZ": 2.0,
            "PhysicalSizeY": 0.3,
            "PhysicalSizeX": 0.3,
            "PhysicalSizeYUnit": "µm",
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeZUnit": "µm",
        },
    )
    stack = open_stack(path)
    assert stack.attrs["format"] == "ome-tiff"
    _coords_ok(stack, (2.0, 0.3, 0.3))


def test_2d_tiff_is_one_plane(tmp_path):
    path = tmp_path / "plane.tif"
    tifffile.imwrite(path, DATA3[0])
    stack = open_stack(path, scale=(1, 0.5, 0.5))
    assert stack.dims == ("z", "y", "x") and stack.shape == (1, 12, 14)


def _ngff(tmp_path, version):
    if version == "0.5":
        path = tmp_path / "img.ome.zarr"
        write_ngff_image(
            bigseg.as_stack(DATA3, scale=(1, 1, 1)).data,
            path,
            dims="zyx",
            scale={"z": 2.0, "y": 0.4, "x": 0.4},
            translation={"z": 10.0, "y": 0.0, "x": 5.0},
        )
        return path
    path = tmp_path / "img04.ome.zarr"
    group = zarr.open_group(path, mode="w", zarr_format=2)
    arr = group.create_array("0", shape=(1,) + DATA3.shape, chunks=(1, 2, 12, 14), dtype="u2")
    arr[:] = DATA3[None]
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [{"name": "c", "type": "channel"}]
            + [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"],
            "datasets": [
                {
                    "path": "0",
                    "coordinateTransformations": [
                        {"type": "scale", "scale": [1, 2.0, 0.4, 0.4]},
                        {"type": "translation", "translation": [0, 10.0, 0, 5.0]},
                    ],
                }
            ],
        }
    ]
    return path


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr(tmp_path, version):
    path = _ngff(tmp_path, version)
    with raise_if_dask_computes():
        stack = open_stack(path)
    assert stack.dims == ("z", "y", "x")
    _coords_ok(stack, (2.0, 0.4, 0.4), (10.0, 0.0, 5.0))
    np.testing.assert_array_equal(stack.values, DATA3)
    assert stack.attrs["format"] == f"ome-zarr-{version}"


def _ngff_04(path, scale, unit):
    group = zarr.open_group(path, mode="w", zarr_format=2)
    group.create_array("0", shape=DATA3.shape, dtype="u2")[:] = DATA3
    axes = [{"name": n, "type": "space", **({"unit": unit} if unit else {})} for n in "zyx"]
    transforms = [{"type": "scale", "scale": list(scale)}]
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": axes,
            "datasets": [{"path": "0", "coordinateTransformations": transforms}],
        }
    ]
    return path


def test_ome_zarr_scale_of_one_without_units_is_no_voxel_size(tmp_path):
    # ome-zarr's writer puts scale 1 and no unit where the voxel size is unknown.
    path = _ngff_04(tmp_path / "uncalibrated.ome.zarr", (1, 1, 1), None)
    with pytest.raises(InputError, match=r"no voxel size; give it as scale=\(z, y, x\)"):
        open_stack(path)
    _coords_ok(open_stack(path, scale=(2.0, 0.5, 0.5)), (2.0, 0.5, 0.5))
    # A unit, or a scale other than 1, is a voxel size.
    _coords_ok(open_stack(_ngff_04(tmp_path / "um.ome.zarr", (1, 1, 1), "micrometer")), (1, 1, 1))
    _coords_ok(open_stack(_ngff_04(tmp_path / "bare.ome.zarr", (2, 0.4, 0.4), None)), (2, 0.4, 0.4))


def test_plain_zarr_array(tmp_path):
    path = tmp_path / "plain.zarr"
    arr = zarr.create_array(
        path, shape=DATA3.shape, chunks=(2, 6, 14), dtype="u2", dimension_names=("z", "y", "x")
    )
    arr[:] = DATA3
    with pytest.raises(InputError, match=r"scale=\(z, y, x\)"):
        open_stack(path)
    stack = open_stack(path, scale=(1, 1, 1))
    assert stack.data.chunks[0] == (2, 2, 1)  # storage chunks
    np.testing.assert_array_equal(stack.values, DATA3)
    rechunked = open_stack(path, scale=(1, 1, 1), chunks=(1, -1, -1))
    assert rechunked.data.chunks == ((1,) * 5, (12,), (14,))


def test_group_without_multiscales_names_arrays(tmp_path):
    group = zarr.open_group(tmp_path / "g.zarr", mode="w")
    group.create_array("raw", shape=(2, 3, 3), dtype="u1")
    with pytest.raises(InputError, match="raw"):
        open_stack(tmp_path / "g.zarr", scale=(1, 1, 1))


@pytest.mark.parametrize("scale", [(0, 1, 1), (1, -1, 1), (float("nan"), 1, 1), (1, 1)])
def test_bad_scale(tmp_path, scale):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, DATA3)
    with pytest.raises(InputError, match="scale"):
        open_stack(path, scale=scale)


def test_missing_and_unknown_inputs(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_stack(tmp_path / "nope.tif")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="neither a TIFF"):
        open_stack(tmp_path / "notes.txt")
    (tmp_path / "fake.tif").write_text("not a tiff")
    with pytest.raises(InputError, match="Could not read"):
        open_stack(tmp_path / "fake.tif", scale=(1, 1, 1))


def test_parse_chunks():
    assert parse_chunks("4,-1,-1") == (4, -1, -1)
    with pytest.raises(InputError):
        parse_chunks("4,0,1")


def test_real_stacks_open_with_their_metadata():
    stack = open_stack(data_file("neubias_nuclei/xyz_8bit__nuclei_autothresh.tif"))
    assert stack.shape == (37, 118, 132) and stack.dtype == np.uint8
    assert stack.attrs["scale"]["z"] == pytest.approx(4.0)
    assert stack.attrs["scale"]["x"] == pytest.approx(0.8286, abs=1e-4)
    seed = open_stack(data_file("seed/test_nuclei_stack.tif"), scale=(1.5, 0.71, 0.71))
    assert seed.shape == (21, 114, 112)


def test_write_labels_ngff_metadata(tmp_path):
    labels = bigseg.as_stack(
        np.arange(2 * 3 * 4, dtype=np.uint32).reshape(2, 3, 4), scale=(2, 0.5, 0.5)
    )
    bigseg.write_labels(labels, tmp_path / "labels.zarr", source="img.tif")
    meta = json.loads((tmp_path / "labels.zarr" / "zarr.json").read_text())
    ome = meta["attributes"]["ome"]
    # A TIFF is not a Zarr image group, which NGFF's source.image must name: bigseg records it.
    assert "image" not in ome["image-label"].get("source", {})
    assert meta["attributes"]["bigseg"]["source"] == "img.tif"
    assert ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] == [
        2,
        0.5,
        0.5,
    ]
    back = open_stack(tmp_path / "labels.zarr")
    np.testing.assert_array_equal(back.values, labels.values)


def test_tiff_files_evicted_from_the_read_cache_are_closed(tmp_path):
    # Each process keeps the last 16 TIFF files open; older ones are closed, not left
    # to the garbage collector (which warns "unclosed file" in whatever runs next).
    import gc
    import sys
    import warnings

    caught = []
    previous, sys.unraisablehook = sys.unraisablehook, caught.append
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)  # pytest's settings ignore it
            for i in range(24):
                path = tmp_path / f"f{i}.tif"
                image = np.full((2, 8, 8), i, np.uint16)
                tifffile.imwrite(path, image, photometric="minisblack")
                assert int(open_stack(path, scale=(1, 1, 1)).values.max()) == i
                gc.collect()
    finally:
        sys.unraisablehook = previous
    assert not caught, caught[0].exc_value


def test_a_run_s_output_directory_reads_as_its_nuclei_table(tmp_path):
    # `bigseg score OUT truth.csv`: the directory a user has is the run's output; any other
    # directory that is not a Parquet dataset is one sentence, not pyarrow's traceback.
    import pandas as pd

    from bigseg.io import read_table

    out = tmp_path / "out"
    (out / "labels.zarr").mkdir(parents=True)
    (out / "labels.zarr" / "chunk").write_bytes(b"\x00" * 16)
    (out / "run.json").write_text("{}")
    nuclei = pd.DataFrame({"z_um": [1.0], "y_um": [2.0], "x_um": [3.0]})
    nuclei.to_parquet(out / "nuclei.parquet")
    pd.testing.assert_frame_equal(read_table(out), nuclei)
    (out / "run.json").unlink()
    with pytest.raises(InputError, match="as a Parquet table"):
        read_table(out)
