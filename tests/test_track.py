"""Tracks across time: frame links, gaps, divisions, ids, and the passes per partition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bigseg import InputError, TrackParams, track
from bigseg.pipeline.partitions import part_name, read_parts
from bigseg.pipeline.sink import Sink
from bigseg.pipeline.tracking import read_tracks, track_parts
from bigseg.score import track_scores
from bigseg.synth import make_truth
from bigseg.track import ctc_tracks, frame_links, link_all


def _nuclei(rows):
    """A nuclei table from (nucleus, t, z, y, x, radius, intensity) rows."""
    n, t, z, y, x, r, i = (np.array(c, float) for c in zip(*rows))
    return pd.DataFrame(
        {
            "nucleus": n.astype(np.int64),
            "t": t.astype(np.int64),
            "z_um": z,
            "y_um": y,
            "x_um": x,
            "volume_um3": 4 / 3 * np.pi * r**3,
            "radius_um": r,
            "intensity_mean": i,
        }
    )


def _from_truth(truth, drop=0.0, jitter=0.0, seed=0):
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {
            "nucleus": truth["nucleus"],
            "t": truth["t"].astype(np.int64),
            **{c: truth[c] + rng.normal(0, jitter, len(truth)) for c in ("z_um", "y_um", "x_um")},
            "volume_um3": 4 / 3 * np.pi * truth["r_um"] ** 3,
            "radius_um": truth["r_um"],
            "intensity_mean": truth["brightness"],
        }
    )
    return table[rng.uniform(size=len(table)) >= drop].reset_index(drop=True)


@pytest.fixture(scope="module")
def lineage():
    return make_truth(
        (30, 160, 160), 30, scale=(1.0, 0.5, 0.5), t=12, seed=5, radius_um=(4.0, 6.0),
        motion_um=1.0, divisions=0.04,
    )  # fmt: skip


def test_two_nuclei_that_swap_places_slowly_keep_their_tracks():
    a = _nuclei([(1, 0, 10, 10, 10, 5, 100), (2, 0, 10, 10, 30, 5, 100)])
    b = _nuclei([(3, 1, 10, 10, 29, 5, 100), (4, 1, 10, 10, 11, 5, 100)])
    links = frame_links(a, b)
    assert dict(zip(links["source"], links["target"])) == {1: 4, 2: 3}


def test_a_nucleus_beyond_the_search_radius_starts_a_new_track():
    table = _nuclei([(1, 0, 10, 10, 10, 5, 100), (2, 1, 10, 10, 25, 5, 100)])
    tracked, tracks = track(table, params=TrackParams(search_radius=8.0))
    assert tracked["track_id"].tolist() == [1, 2]
    assert len(tracks) == 2 and tracks["length"].tolist() == [1, 1]


def test_a_missing_time_point_is_bridged_by_a_gap():
    table = _nuclei([(1, 0, 10, 10, 10, 5, 100), (2, 2, 10, 10, 12, 5, 100)])
    tracked, tracks = track(table, times=np.arange(3))
    assert tracked["track_id"].tolist() == [1, 1]
    assert tracks[["t_first", "t_last", "length"]].values.tolist() == [[0, 2, 2]]
    tracked, _ = track(table, params=TrackParams(gap_closing=False), times=np.arange(3))
    assert tracked["track_id"].tolist() == [1, 2]


def test_a_division_ends_the_mother_and_starts_two_daughters():
    rd = 5 / 2 ** (1 / 3)
    table = _nuclei(
        [(1, 0, 10, 20, 20, 5, 100), (2, 1, 10, 20, 24.5, rd, 100), (3, 1, 10, 20, 15.5, rd, 100)]
    )
    tracked, tracks = track(table)
    mother, d1, d2 = tracked["track_id"].tolist()
    assert len({mother, d1, d2}) == 3
    assert tracked["parent_track_id"].tolist() == [0, mother, mother]
    assert tracks.set_index("track_id").loc[[d1, d2], "parent_track_id"].tolist() == [mother] * 2
    tracked, _ = track(table, params=TrackParams(divisions=False))
    assert (tracked["parent_track_id"] == 0).all()


def test_the_daughters_of_a_large_nucleus_are_found_beyond_the_search_radius():
    # A nucleus of radius 9 µm divides: her daughters (7.1 µm) lie 8.6 µm either side
    # of where she was, and moved 1 µm besides: beyond the 8 µm search radius, within
    # it plus the mother's radius.
    rd = 9 / 2 ** (1 / 3)
    table = _nuclei(
        [(1, 0, 20, 40, 40, 9, 100), (2, 1, 20, 41, 48.6, rd, 100), (3, 1, 20, 41, 31.4, rd, 100)]
    )
    tracked, _ = track(table, params=TrackParams(search_radius=8.0))
    mother, d1, d2 = tracked["track_id"].tolist()
    assert len({mother, d1, d2}) == 3
    assert tracked["parent_track_id"].tolist() == [0, mother, mother]


@pytest.mark.parametrize("seed", [0, 1])
def test_divisions_of_large_2d_nuclei_moving_two_microns_are_found(seed):
    # HeLa-like nuclei of 4.5-8.5 µm in a 2D time-lapse, 2 µm of motion per time point.
    # With candidates within the search radius only: division F1 0.85 (seed 0), link F1
    # 0.988 (seed 1).
    truth = make_truth(
        (1, 350, 550), 40, scale=(1.0, 0.71, 0.71), t=10, seed=seed, radius_um=(4.5, 8.5),
        motion_um=2.0, divisions=0.05,
    )  # fmt: skip
    table = _from_truth(truth, jitter=0.2, seed=seed)
    table["volume_um3"] = np.nan  # 2D images: areas from the radius
    tracked, _ = track(table)
    s = track_scores(tracked, truth)
    assert s.divisions_true >= 8
    assert s.link_f1 >= 0.99 and s.division_f1 >= 0.95


def test_a_nucleus_moves_the_search_radius_plus_its_own_radius_at_most():
    # Nuclei of radius 2 µm: one moves 9.5 µm (within 8 + 2, and the cost allows up to
    # 8 √2), the other 10.5 µm (beyond the reach): the second starts a new track.
    table = _nuclei([(1, 0, 10, 10, 10, 2, 100), (2, 1, 10, 10, 19.5, 2, 100),
                     (3, 0, 10, 60, 10, 2, 100), (4, 1, 10, 60, 20.5, 2, 100)])  # fmt: skip
    tracked, _ = track(table, params=TrackParams(search_radius=8.0))
    track_of = dict(zip(tracked["nucleus"], tracked["track_id"]))
    assert track_of[1] == track_of[2] and track_of[3] != track_of[4]


@pytest.mark.parametrize("late", ["missed", "merged"])
def test_a_daughter_found_a_time_point_late_is_still_a_daughter(late):
    # The mother at t = 0; at t = 1 segmentation found one daughter (the other missed, or
    # merged with her into one nucleus of the mother's size); at t = 2 both daughters.
    rd = 5 / 2 ** (1 / 3)
    first = (2, 1, 10, 20, 24.0, rd, 100) if late == "missed" else (2, 1, 10, 20, 20.5, 5, 100)
    rows = [(1, 0, 10, 20, 20, 5, 100), first, (3, 2, 10, 20, 25.0, rd, 100),
            (4, 2, 10, 20, 15.0, rd, 100), (5, 3, 10, 20, 25.5, rd, 100),
            (6, 3, 10, 20, 14.5, rd, 100)]  # fmt: skip
    table = _nuclei(rows)
    tracked, tracks = track(table)
    track_of = dict(zip(tracked["nucleus"], tracked["track_id"]))
    parent_of = dict(zip(tracked["nucleus"], tracked["parent_track_id"]))
    mother = track_of[1]
    if late == "missed":  # the division at t = 0: the mother's track ends there
        assert mother != track_of[2] and parent_of[2] == mother
        assert track_of[2] == track_of[3] and parent_of[4] == mother
        assert tracks.set_index("track_id").loc[mother, "t_last"] == 0
    else:  # the merged daughters make one nucleus: the division shows when they part
        assert track_of[2] == mother and parent_of[3] == parent_of[4] == mother
    assert track_of[5] == track_of[3] and track_of[6] == track_of[4]
    assert len(tracks) == 3 and (tracks["parent_track_id"] > 0).sum() == 2
    # Off with divisions (a late daughter also with gap closing off): no parent.
    offs = [TrackParams(divisions=False)]
    if late == "missed":
        offs.append(TrackParams(gap_closing=False))
    for params in offs:
        tracked, _ = track(table, params=params)
        assert (tracked.loc[tracked["nucleus"] == 4, "parent_track_id"] == 0).all()


def test_moving_dividing_nuclei_are_tracked_with_their_lineage(lineage):
    assert (lineage["parent_track_id"] > 0).any()  # the series divides
    tracked, _ = track(_from_truth(lineage, jitter=0.3))
    s = track_scores(tracked, lineage)
    assert s.links_true > 300 and s.divisions_true >= 5
    assert s.link_f1 >= 0.99 and s.division_f1 >= 0.9


def test_tracking_survives_lost_detections(lineage):
    tracked, _ = track(_from_truth(lineage, drop=0.03, jitter=0.3, seed=1))
    s = track_scores(tracked, lineage)
    assert s.link_f1 >= 0.97  # gaps closed over the lost nuclei


def _late_daughters(lineage):
    """The truth's nuclei without the first nucleus of every second daughter."""
    table = _from_truth(lineage, jitter=0.3, seed=3)
    first = lineage.sort_values("t").groupby("track_id")["nucleus"].first()
    second = lineage[lineage["parent_track_id"] > 0].groupby("parent_track_id")["track_id"].max()
    return table[~table["nucleus"].isin(first.loc[second.to_numpy()])].reset_index(drop=True)


def test_daughters_found_a_time_point_late_keep_their_lineage(lineage):
    table = _late_daughters(lineage)
    tracked, _ = track(table)
    s = track_scores(tracked, lineage)
    assert s.divisions_true >= 5 and s.division_f1 == 1.0
    tracked, _ = track(table, params=TrackParams(gap_closing=False))
    assert track_scores(tracked, lineage).division_recall == 0.0


@pytest.mark.parametrize("late", [False, True], ids=["drops", "late-daughters"])
@pytest.mark.parametrize("sizes", [[1] * 12, [3, 3, 3, 3], [5, 2, 1, 4], [12]])
def test_tracking_per_partition_is_tracking_the_whole_table(lineage, sizes, late, tmp_path):
    if late:
        table = _late_daughters(lineage)
    else:
        table = _from_truth(lineage, drop=0.05, jitter=0.3, seed=2)
        table = table[table["t"] != 7]  # a time point without nuclei
    whole, whole_tracks = track(table, times=np.arange(12))
    (tmp_path / "nuclei.parquet").mkdir()
    edges = np.cumsum([0, *sizes])
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        part = table[(table["t"] >= a) & (table["t"] < b)]
        part.to_parquet(tmp_path / "nuclei.parquet" / part_name(i), index=False)
    times = [list(range(a, b)) for a, b in zip(edges[:-1], edges[1:])]
    counts = track_parts(tmp_path / "nuclei.parquet", tmp_path / "tracks.parquet", tmp_path,
                         times, Sink())  # fmt: skip
    got = _assert_tracked_as(tmp_path, whole, whole_tracks)
    assert counts["tracks"] == len(whole_tracks) and counts["divisions"] > 0
    # Tracking again gives the same (the earlier track columns are dropped on reading).
    track_parts(tmp_path / "nuclei.parquet", tmp_path / "tracks.parquet", tmp_path, times, Sink())
    again = read_parts(tmp_path / "nuclei.parquet").sort_values(["t", "nucleus"])
    pd.testing.assert_frame_equal(again.reset_index(drop=True), got.reset_index(drop=True))


def _assert_tracked_as(tmp_path, whole, whole_tracks):
    """Check the parts and tracks written under ``tmp_path`` against tracking in memory."""
    got = read_parts(tmp_path / "nuclei.parquet").sort_values(["t", "nucleus"])
    want = whole.sort_values(["t", "nucleus"])
    cols = ["nucleus", "track_id", "parent_track_id"]
    pd.testing.assert_frame_equal(
        got[cols].reset_index(drop=True), want[cols].reset_index(drop=True)
    )
    tracks = read_tracks(tmp_path / "tracks.parquet").sort_values("track_id")
    pd.testing.assert_frame_equal(tracks.reset_index(drop=True), whole_tracks)
    return got


def _futures(task):
    """How many distributed futures a task of a graph takes."""
    from distributed import Future

    if isinstance(task, Future):
        return 1
    if isinstance(task, tuple | list):
        return sum(_futures(x) for x in task)
    return 0


class _CountingClient:
    """A distributed client that counts the tasks of each graph submitted to it."""

    def __init__(self, client):
        self.client, self.tasks, self.futures_in = client, [], []

    def compute(self, items, **kwargs):
        listed = items if isinstance(items, list) else [items]
        graph = {}
        for item in listed:
            graph.update(dict(item.__dask_graph__()))
        self.tasks.append(len(graph))
        self.futures_in.append(sum(_futures(task) for task in graph.values()))
        return self.client.compute(items, **kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


@pytest.mark.parametrize("batch", [1, 5])
def test_tracking_in_batches_on_a_client_holds_a_batch_per_graph(lineage, batch, tmp_path):
    from distributed import Client

    table = _from_truth(lineage, drop=0.05, jitter=0.3, seed=2)
    whole, whole_tracks = track(table, times=np.arange(12))
    (tmp_path / "nuclei.parquet").mkdir()
    for i in range(12):
        part = table[table["t"] == i]
        part.to_parquet(tmp_path / "nuclei.parquet" / part_name(i), index=False)
    times = [[i] for i in range(12)]
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as c:
        client = _CountingClient(c)
        counts = track_parts(tmp_path / "nuclei.parquet", tmp_path / "tracks.parquet", tmp_path,
                             times, Sink(client), batch_parts=batch)  # fmt: skip
    _assert_tracked_as(tmp_path, whole, whole_tracks)
    assert counts["tracks"] == len(whole_tracks)
    # Three passes, each one graph per batch of parts, none larger than its batch (one
    # task per part, plus the one that concatenates the batch's counts or counts the
    # tracks still open): the client never holds a graph of the whole series.
    n_batches = -(-12 // batch)
    assert len(client.tasks) == 3 * n_batches
    assert max(client.tasks) <= batch + 1
    # No graph takes a future of the one before (the ids chain hands its open tracks on
    # through the scratch directory): a chain of futures keeps every task of the chain in
    # the scheduler's and the worker's state until the last one is released.
    assert sum(client.futures_in) == 0


def test_empty_tables_give_typed_empty_results():
    empty = _nuclei([(1, 0, 0, 0, 0, 5, 1)]).iloc[:0]
    assert len(link_all(empty)) == 0 and len(frame_links(empty, empty)) == 0
    tracked, tracks = track(empty)
    assert len(tracked) == 0 and len(tracks) == 0
    assert tracks["track_id"].dtype == np.int64


def test_speeds_are_in_um_per_time_point_and_per_minute():
    table = _nuclei([(1, 0, 10, 10, 10, 5, 100), (2, 1, 10, 10, 12, 5, 100),
                     (3, 2, 10, 10, 14, 5, 100)])  # fmt: skip
    _, tracks = track(table, frame_interval_s=30.0)
    assert tracks["path_um"].iloc[0] == pytest.approx(4.0)
    assert tracks["mean_speed_um_per_frame"].iloc[0] == pytest.approx(2.0)
    assert tracks["mean_speed_um_per_min"].iloc[0] == pytest.approx(4.0)
    _, tracks = track(table)
    assert np.isnan(tracks["mean_speed_um_per_min"].iloc[0])


def test_ctc_tracks_split_gaps_into_pieces_and_keep_the_lineage():
    table = pd.DataFrame(
        {
            "t": [0, 2, 3, 4, 4],
            "track_id": [1, 1, 1, 2, 3],
            "parent_track_id": [0, 0, 0, 1, 1],
        }
    )
    labels, rows = ctc_tracks(table, np.arange(5))
    assert labels.tolist() == [1, 2, 2, 3, 4]
    assert rows.values.tolist() == [[1, 0, 0, 0], [2, 2, 3, 1], [3, 4, 4, 2], [4, 4, 4, 2]]


@pytest.mark.parametrize(
    ("change", "word"),
    [({"search_radius": 0}, "search_radius"), ({"division_cost": -1}, "division_cost")],
)
def test_bad_tracking_parameters_are_named(change, word):
    with pytest.raises(InputError, match=word):
        TrackParams(**change)


def test_still_nuclei_without_motion_are_drawn_as_before():
    before = make_truth((10, 64, 64), 5, t=3, seed=4)
    assert "track_id" not in before
    moving = make_truth((10, 64, 64), 5, t=3, seed=4, motion_um=1.0)
    first = moving[moving["t"] == 0].drop(columns=["track_id", "parent_track_id"])
    pd.testing.assert_frame_equal(first, before[before["t"] == 0])
    step = moving.groupby("track_id")[["z_um", "y_um", "x_um"]].diff().dropna()
    assert np.linalg.norm(step.to_numpy(), axis=1).max() <= 1.25 + 1e-9
