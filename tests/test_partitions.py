"""Tables partitioned by time point: linked, numbered and written on the workers."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import bigseg
import bigseg.pipeline.partitions as partitions
import bigseg.pipeline.runner as runner
from bigseg import link, nuclei_table, run
from bigseg.stack import scale_of
from bigseg.track import track

from .conftest import synthetic


@pytest.fixture(scope="module")
def series():
    return synthetic((6, 64, 64), 5, t=4, seed=31, radius_um=(3.0, 5.0))[0].chunk({"t": 1})


# dask's fsspec Parquet reader calls reset_index(inplace=True), deprecated in pandas 3.1.
@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")
def test_tables_are_partitioned_datasets_readable_by_pandas_pyarrow_and_dask(series, tmp_path):
    params = bigseg.Params(min_radius=2.84, max_radius=9.0, smooth_radius=1.42)
    result = run(series, tmp_path / "out", params=params)
    assert isinstance(result.nuclei, pd.DataFrame) and len(result.nuclei) > 0
    for name, table in (("nuclei", result.nuclei), ("detections", result.detections)):
        path = tmp_path / "out" / f"{name}.parquet"
        parts = sorted(p.name for p in path.iterdir())
        assert parts == [f"part.{i:06d}.parquet" for i in range(4)]  # one file per time point
        pd.testing.assert_frame_equal(pd.read_parquet(path), table)
        pd.testing.assert_frame_equal(pq.read_table(path).to_pandas(), table)
        lazy = dd.read_parquet(str(path))
        assert lazy.npartitions == 4
        pd.testing.assert_frame_equal(lazy.compute().reset_index(drop=True), table)
    # The same ids as linking everything at once, in memory.
    detections = result.detections.drop(columns="nucleus")
    whole = link(detections, params=params, scale=scale_of(series))
    np.testing.assert_array_equal(whole["nucleus"], result.detections["nucleus"])
    nuclei = partitions.integer_columns(nuclei_table(whole, scale=scale_of(series)), np.arange(4))
    # ... and the same tracks as tracking the whole table at once, in memory.
    nuclei, tracks = track(nuclei, times=np.arange(4))
    pd.testing.assert_frame_equal(nuclei, result.nuclei, check_exact=False, rtol=1e-12)
    # (tracks.parquet holds each track in the part where it ends)
    found = result.tracks.sort_values("track_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(tracks, found, check_exact=False, rtol=1e-12)
    assert (tmp_path / "out" / "nuclei.csv").exists()


def test_large_runs_read_their_tables_back_lazily(series, tmp_path, monkeypatch):
    params = bigseg.Params(min_radius=2.84, max_radius=9.0, smooth_radius=1.42)
    small = run(series, tmp_path / "small", params=params)
    monkeypatch.setattr(partitions, "SMALL_NUCLEI", 0)
    monkeypatch.setattr(runner, "SMALL_DETECTIONS", 0)
    large = run(series, tmp_path / "large", params=params)
    assert isinstance(large.nuclei, dd.DataFrame) and isinstance(large.detections, dd.DataFrame)
    assert not (tmp_path / "large" / "nuclei.csv").exists()  # only small runs get a CSV
    assert large.record["counts"] == small.record["counts"]
    for name in ("nuclei", "detections"):
        lazy = getattr(large, name).compute().reset_index(drop=True)
        pd.testing.assert_frame_equal(lazy, getattr(small, name))


def test_read_parts_in_groups_gives_the_parts_in_order(series, tmp_path, monkeypatch):
    params = bigseg.Params(min_radius=2.84, max_radius=9.0, smooth_radius=1.42)
    result = run(series, tmp_path / "out", params=params)
    monkeypatch.setattr(partitions, "READ_GROUP", 3)  # 4 parts: groups of 3 and 1
    for name, table in (("nuclei", result.nuclei), ("detections", result.detections)):
        path = tmp_path / "out" / f"{name}.parquet"
        pd.testing.assert_frame_equal(partitions.read_parts(path), table)
        pd.testing.assert_frame_equal(partitions.read_parts(path), pd.read_parquet(path))
