"""Large time points: detections partitioned by z-chunk, linked exactly (pipeline/zparts.py)."""

import json
from functools import partial

import numpy as np
import pandas as pd
import pytest
import zarr

import bigseg
import bigseg.pipeline.partitions as partitions
import bigseg.pipeline.zparts as zparts
from bigseg import Params, run
from bigseg.cluster import link
from bigseg.pipeline.partitions import Parts, read_parts
from bigseg.pipeline.sink import Sink

from .conftest import SCALE, synthetic

UNPROVEN = "ignore:.*not proven identical to whole-plane segmentation:UserWarning"


@pytest.fixture(scope="module")
def series():
    """Two time points of nuclei 3-7 µm (4-10 planes): most cross several seams."""
    stack, _ = synthetic(
        shape=(20, 96, 96), nuclei=16, t=2, seed=11, radius_um=(3.0, 7.0), min_separation=0.75
    )
    return stack


@pytest.fixture(scope="module")
def detections(series):
    """Per-plane detections of the series, before linking, and fragments in every plane.

    The fragments (copies of 40 detections moved 150 pixels along x, away from every
    nucleus, at 1/8, 1/2 or all of their area) are what the fragment filter drops or
    keeps by their size, their planes and whether they touch a face or a side.
    """
    labels = bigseg.segment(series, params=Params())
    table = bigseg.measure(labels, series).compute()
    rng = np.random.default_rng(4)
    pieces = table.iloc[rng.choice(len(table), 40, replace=False)].copy()
    shrink = rng.choice([1 / 8, 1 / 2, 1.0], len(pieces))
    pieces["x"] += 150
    pieces["x_um"] += 150 * SCALE[2]
    pieces["area_px"] = np.maximum(1, np.round(pieces["area_px"] * shrink)).astype(
        pieces["area_px"].dtype
    )
    pieces["area_um2"] = pieces["area_px"] * SCALE[1] * SCALE[2]
    pieces["radius_um"] = np.sqrt(pieces["area_um2"] / np.pi)
    pieces["label"] += 1000
    table = pd.concat([table, pieces], ignore_index=True)
    return table.sort_values(["t", "z", "label"], ignore_index=True)


def _reader(table: pd.DataFrame, edges: np.ndarray, i: int, j: int) -> pd.DataFrame:
    z = table["z"].to_numpy()
    rows = table[(table["t"].to_numpy() == i) & (z >= edges[j]) & (z < edges[j + 1])]
    return rows.reset_index(drop=True)


@pytest.mark.parametrize(
    "z_chunks",
    [(1,) * 20, (2,) * 10, (3, 1, 1, 5, 2, 1, 7), (19, 1), (1, 19)],
    ids=["planes", "pairs", "uneven", "last-thin", "first-thin"],
)
@pytest.mark.parametrize("max_gap", [0, 1])
def test_linking_by_z_chunk_gives_the_ids_of_linking_each_time_point_at_once(
    detections, tmp_path, z_chunks, max_gap
):
    """Chains cross one or many seams, links skip a plane across a seam; necks, fragments."""
    params = Params(max_gap=max_gap)
    whole = link(detections, params=params, scale=SCALE)
    parts = Parts((1, 1), z_chunks)
    edges = np.cumsum((0, *z_chunks))
    read = partial(_reader, detections, edges)
    counts, reach = zparts.link_pass(
        read, parts, params=params, scale=SCALE, planar=False, work=tmp_path, sink=Sink()
    )
    offsets = np.cumsum(counts) - counts
    linked = pd.concat(
        [
            pd.read_parquet(tmp_path / "linked" / f"part.{p:06d}.parquet").assign(
                nucleus=lambda f, o=o: f["nucleus"] + o
            )
            for p, o in enumerate(offsets)
        ],
        ignore_index=True,
    )
    linked = linked.sort_values(["t", "z", "label"], ignore_index=True)
    expected = whole.sort_values(["t", "z", "label"], ignore_index=True)
    pd.testing.assert_frame_equal(linked, expected, check_dtype=False)
    assert len(whole) < len(detections)  # fragments were dropped
    # the pieces the test is about happened: nuclei over several parts, and gathered
    part_of = np.searchsorted(edges, linked["z"].to_numpy(), side="right") - 1
    spans = pd.Series(part_of).groupby(linked["nucleus"].to_numpy()).nunique()
    if len(z_chunks) > 2:
        assert spans.max() >= 3
    # a part's reach is the last plane of its rows; every row is within its part's reach
    for p in range(len(parts)):
        rows = linked[
            (linked["nucleus"] > offsets[p]) & (linked["nucleus"] <= offsets[p] + counts[p])
        ]
        assert (rows["z"].max() if len(rows) else -1) == reach[p]


def test_whole_chunkings_are_not_partitioned_by_z():
    assert zparts.z_chunks((1, 1), (4, 4), 10**9) == (4, 4)
    assert zparts.z_chunks((2,), (4, 4), 10**9) is None  # several time points per t-chunk
    assert zparts.z_chunks((1,), (8,), 10**9) is None  # one z-chunk
    assert zparts.z_chunks((1,), (4, 4), 16) is None  # small time points


def _outputs(path):
    nuclei = read_parts(path / "nuclei.parquet").sort_values("nucleus", ignore_index=True)
    detections = read_parts(path / "detections.parquet")
    detections = detections.sort_values(["t", "z", "label"], ignore_index=True)
    labels = zarr.open_array(str(path / "labels.zarr" / "0"), mode="r")[...]
    record = json.loads((path / "run.json").read_text())
    return nuclei, detections, labels, record


@pytest.mark.filterwarnings(UNPROVEN)
@pytest.mark.parametrize(
    "chunks",
    [{"t": 1, "z": 3, "y": -1, "x": -1}, {"t": 1, "z": 4, "y": 48, "x": 48}],
    ids=["whole-planes", "split-planes"],
)
def test_a_run_by_z_chunk_writes_the_outputs_of_a_run_by_t_chunk(
    series, tmp_path, monkeypatch, chunks
):
    """Tables, labels and tracks of a run partitioned by z-chunk equal a run's by t-chunk."""
    stack = series.chunk(chunks)
    by_t = run(stack, tmp_path / "by_t", track_labels=True)
    monkeypatch.setattr(zparts, "Z_PARTS_VOXELS", 1)

    def whole(*args, **kwargs):
        raise AssertionError("a time point was linked as one table")

    monkeypatch.setattr(partitions, "link", whole)
    by_z = run(stack, tmp_path / "by_z", track_labels=True)
    a, b = _outputs(tmp_path / "by_t"), _outputs(tmp_path / "by_z")
    n_z = len(stack.chunks[1])
    assert (a[3]["work_blocks"]["parts_per_t"], b[3]["work_blocks"]["parts_per_t"]) == (1, n_z)
    assert len(list((tmp_path / "by_z" / "nuclei.parquet").glob("part.*.parquet"))) == 2 * n_z
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    assert len(a[0]) > 10 and a[2].max() == len(a[0])
    tracks = [
        read_parts(p / "tracks.parquet").sort_values("track_id")
        for p in (tmp_path / "by_t", tmp_path / "by_z")
    ]
    pd.testing.assert_frame_equal(*(t.reset_index(drop=True) for t in tracks))
    labels = [
        zarr.open_array(str(p / "track_labels.zarr" / "0"), mode="r")[...]
        for p in (tmp_path / "by_t", tmp_path / "by_z")
    ]
    np.testing.assert_array_equal(*labels)
    assert a[3]["tracking"]["counts"] == b[3]["tracking"]["counts"]
    pd.testing.assert_frame_equal(by_t.nuclei, by_z.nuclei)  # what run() returns, too
    assert a[3]["tracking"]["counts"]["tracks"] > 0
    # nothing of the link's scratch is left in the output
    assert not (tmp_path / "by_z" / "zlink").exists()


@pytest.fixture(scope="module")
def small_nuclei():
    """Small nuclei (1.1-1.6 x min_radius) cut to two or three planes: the fragment filter
    drops some, and keeps back those as bright as 0.4 of the median (cluster.bright_pieces).
    """
    from bigseg.stack import as_stack
    from bigseg.synth import make_truth, render

    scale, min_r = (1.5, 0.71, 0.71), Params().min_radius
    truth = make_truth(
        (32, 192, 192), 80, scale=scale, seed=3, radius_um=(1.1 * min_r, 1.6 * min_r),
        touching=0.25, brightness=(300.0, 3000.0), brightness_spread=10.0,
    )  # fmt: skip
    image = render(
        truth, (0, 0, 0, 0), (1, 32, 192, 192), scale=scale, noise_seed=3, texture=0.1,
        read_noise=15.0, offset=30000.0, max_value=65535, autofluorescence=150.0,
        illumination=0.3,
    )  # fmt: skip
    return as_stack(image[0], scale=scale)


@pytest.mark.filterwarnings(UNPROVEN)
def test_small_bright_pieces_are_kept_alike_by_every_path_of_a_run(
    small_nuclei, tmp_path, monkeypatch
):
    """Whole planes, planes split in y/x (stitched slab by slab, or in memory), z-parts."""
    import bigseg.cluster as cluster
    import bigseg.pipeline.passes as passes
    from bigseg.tables import PEAK

    def nuclei(name, chunks):
        out = run(small_nuclei.chunk(chunks), tmp_path / name)
        table = read_parts(tmp_path / name / "nuclei.parquet")
        assert PEAK not in read_parts(tmp_path / name / "detections.parquet").columns
        assert PEAK not in table.columns and PEAK not in out.nuclei.columns
        return table.sort_values("nucleus", ignore_index=True)

    whole = nuclei("whole", {"z": 8, "y": -1, "x": -1})
    slabs = nuclei("slabs", {"z": 8, "y": 96, "x": 96})
    in_memory = []
    stitched = passes.detections_from_sums
    with monkeypatch.context() as m:  # blocks taken as of several sizes: stitched in memory
        m.setattr(passes._scratch, "regular", lambda chunks: False)
        m.setattr(
            passes, "detections_from_sums", lambda *a, **k: in_memory.append(1) or stitched(*a, **k)
        )
        memory = nuclei("memory", {"z": 8, "y": 96, "x": 96})
    assert in_memory
    monkeypatch.setattr(zparts, "Z_PARTS_VOXELS", 1)
    by_z = nuclei("by_z", {"z": 8, "y": -1, "x": -1})
    by_z_split = nuclei("by_z_split", {"z": 8, "y": 96, "x": 96})
    for name in ("by_z", "by_z_split"):
        record = json.loads((tmp_path / name / "run.json").read_text())
        assert record["work_blocks"]["parts_per_t"] == 4
    for other in (slabs, memory, by_z, by_z_split):
        pd.testing.assert_frame_equal(whole, other)
    monkeypatch.setattr(cluster, "BRIGHT_PEAK", np.inf)  # the rule off: fewer nuclei
    assert len(nuclei("off", {"z": 8, "y": -1, "x": -1})) < len(whole)
