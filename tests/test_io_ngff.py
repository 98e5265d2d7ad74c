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
