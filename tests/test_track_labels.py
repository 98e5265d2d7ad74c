"""``track_labels.zarr``: the label volume by track id, beside ``labels.zarr``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import zarr

import bigseg.pipeline.scratch as scratch
from bigseg import InputError, TrackParams, open_stack, run
from bigseg.io import ngff
from bigseg.kernels.lut import map_ids
from bigseg.pipeline.partitions import read_parts
from bigseg.pipeline.retrack import retrack
from bigseg.synth import synth

from .test_io_ngff import check_ngff_05_image

LEVELS = [(6, 8, 96, 96), (6, 8, 48, 48), (6, 8, 24, 24)]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    root = tmp_path_factory.mktemp("track-labels")
    image, _ = synth(root / "s.ome.zarr", shape=(8, 96, 96), nuclei=8, t=6, seed=4,
                     scale=(1.5, 0.5, 0.5), radius_um=(4.0, 6.0), motion_um=1.0,
                     divisions=0.1)  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ngff, "PYRAMID_TILE", 24)  # three levels
        mp.setattr(scratch, "BATCH_BLOCKS", 2)  # three batches of two time points
        result = run(image, root / "out", track_labels=True)
    return result


def _levels(path):
    group = zarr.open_group(path, mode="r")
    paths = [d["path"] for d in group.attrs["ome"]["multiscales"][0]["datasets"]]
    return [zarr.open_array(path / p, mode="r") for p in paths]


def _by_track(labels, nuclei):
    """Map nucleus ids to track ids voxel by voxel, the plain way."""
    lut = dict(zip(nuclei["nucleus"].to_numpy(), nuclei["track_id"].to_numpy()))
    return np.vectorize(lambda v: lut.get(int(v), 0), otypes=[np.uint32])(labels)


def _assert_by_track(out):
    nuclei = read_parts(out / "nuclei.parquet")
    by_nucleus, by_track = _levels(out / "labels.zarr"), _levels(out / "track_labels.zarr")
    assert [a.shape for a in by_track] == [a.shape for a in by_nucleus]
    for a, b in zip(by_nucleus, by_track):
        assert b.chunks == a.chunks and b.dtype == np.uint32
        np.testing.assert_array_equal(b[...], _by_track(a[...], nuclei))
    return nuclei, by_track[0][...]


def test_every_voxel_holds_the_track_id_of_its_nucleus_at_every_level(tracked):
    out = tracked.output
    assert tracked.track_labels_path == out / "track_labels.zarr"
    assert tracked.record["tracking"]["track_labels"] is True
    nuclei, level0 = _assert_by_track(out)
    assert [a.shape for a in _levels(out / "track_labels.zarr")] == LEVELS
    # A track keeps its label across time points; the daughters of a division get new ones.
    assert tracked.record["tracking"]["counts"]["divisions"] > 0
    assert set(np.unique(level0)) - {0} == set(nuclei["track_id"])
    spans = nuclei.groupby("track_id")["t"].nunique()
    assert (spans > 1).any()
    for track_id in spans[spans > 1].index[:3]:
        times = np.flatnonzero((level0 == track_id).any(axis=(1, 2, 3)))
        assert sorted(times) == sorted(nuclei.loc[nuclei["track_id"] == track_id, "t"])


def test_track_labels_are_a_valid_ngff_label_image_like_labels(tracked):
    out = tracked.output
    meta = check_ngff_05_image(out / "track_labels.zarr", label=True)
    ref = check_ngff_05_image(out / "labels.zarr", label=True)
    # The same levels, axes, scale and translation.
    assert meta["attributes"]["ome"]["multiscales"] == ref["attributes"]["ome"]["multiscales"]
    source = json.loads((out / "labels.zarr" / "zarr.json").read_text())["attributes"]
    mine = json.loads((out / "track_labels.zarr" / "zarr.json").read_text())["attributes"]
    assert mine["ome"]["image-label"]["source"] == source["ome"]["image-label"]["source"]
    labels = open_stack(out / "track_labels.zarr")
    assert labels.dims == ("t", "z", "y", "x")
    assert labels.attrs["scale"] == open_stack(out / "labels.zarr").attrs["scale"]
    models = pytest.importorskip("ome_zarr_models.v05.image_label")
    models.ImageLabel.from_zarr(zarr.open_group(out / "track_labels.zarr", mode="r"))


def test_track_labels_need_tracks():
    stack = np.zeros((3, 4, 16, 16), np.uint16)
    from bigseg import as_stack

    series = as_stack(stack, scale=(1.0, 0.5, 0.5))
    with pytest.raises(InputError, match="track_labels=True needs tracks"):
        run(series, "/nonexistent/never-written", track=False, track_labels=True)
    with pytest.raises(InputError, match="track_labels=True needs tracks"):
        run(series.isel(t=0), "/nonexistent/never-written", track_labels=True)


def test_tracking_again_rebuilds_or_removes_the_track_labels(tracked, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(tracked.output, out)
    before = read_parts(out / "nuclei.parquet")
    # Other tracks (0.5 µm is less than the motion): the track labels are rebuilt.
    entry = retrack(out, params=TrackParams(search_radius=0.5))
    assert entry["track_labels"] is True
    nuclei, _ = _assert_by_track(out)
    assert nuclei["track_id"].nunique() > before["track_id"].nunique()
    assert retrack(out, track_labels=False)["track_labels"] is False
    assert not (out / "track_labels.zarr").exists()  # its ids were those of earlier tracks
    assert retrack(out)["track_labels"] is False
    assert not (out / "track_labels.zarr").exists()
    assert retrack(out, track_labels=True)["track_labels"] is True
    nuclei, _ = _assert_by_track(out)
    pd.testing.assert_frame_equal(nuclei, before)  # the first tracks again
    np.testing.assert_array_equal(
        _levels(out / "track_labels.zarr")[1][...],
        _levels(tracked.output / "track_labels.zarr")[1][...],
    )


def test_map_ids_maps_listed_ids_and_zeroes_the_rest():
    rng = np.random.default_rng(0)
    block = rng.integers(0, 40, (2, 3, 5, 7)).astype(np.uint32)
    ids = np.array([3, 10, 11, 39, 50])
    values = np.array([7, 1, 2, 9, 4])
    want = np.vectorize(lambda v: dict(zip(ids, values)).get(v, 0))(block)
    np.testing.assert_array_equal(map_ids(block, ids, values, np.uint32), want)
    assert map_ids(block, ids, values, np.uint32).dtype == np.uint32
    assert not map_ids(block, np.empty(0, int), np.empty(0, int), np.uint16).any()
    assert map_ids(block[:0], ids, values, np.uint32).shape == (0, 3, 5, 7)
    np.testing.assert_array_equal(map_ids(np.array([0, 3, 5]), ids, values, np.int64), [0, 7, 0])
