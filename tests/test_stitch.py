import json
import warnings

import dask
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

import bigseg
from bigseg import InputError, Params, open_stack, run
from bigseg.chunked.plan import fitted_chunks
from bigseg.cli import main
from bigseg.measure import measure
from bigseg.segment import halo_px
from bigseg.stack import as_stack
from bigseg.synth import synth

from .conftest import SCALE, assert_same_labels, raise_if_dask_computes, synthetic

# Small nuclei and a small halo, so that small stacks hold many blocks.
PARAMS = Params(preset="seed", smooth_radius=1.42, min_radius=2.84, max_radius=9.0)
HALO = halo_px(PARAMS.in_pixels(SCALE), "seed")
SHAPE = (5, 150, 140)


@pytest.fixture(scope="module")
def dense():
    """Many touching nuclei, and the whole-plane result to compare with."""
    stack, _ = synthetic(shape=SHAPE, nuclei=70, seed=11, radius_um=(4.0, 6.0), min_separation=0.75)
    whole = bigseg.segment(stack, params=PARAMS)
    # Dense: dozens of foreground components hold several touching regions.
    touching = 0
    for plane in whole.values:
        components, n = ndi.label(plane > 0)
        pairs = np.unique(np.stack([components[plane > 0], plane[plane > 0]]), axis=1)
        touching += int((np.bincount(pairs[0], minlength=n + 1) > 1).sum())
    assert touching > 30
    detections = measure(whole, stack).compute()
    return stack, whole.values, _sorted(detections)


def _sorted(table):
    return table.sort_values(["t", "z", "y", "x"]).reset_index(drop=True)


def _assert_same(labels, detections, whole, whole_detections):
    for a, b in zip(labels, whole):
        assert_same_labels(a, b)
    assert len(detections) == len(whole_detections) > 0
    for column in ("t", "z", "area_px"):
        np.testing.assert_array_equal(detections[column], whole_detections[column])
    for column in ("y", "x", "y_um", "x_um", "intensity_sum", "intensity_mean", "radius_um"):
        np.testing.assert_allclose(
            detections[column], whole_detections[column], rtol=1e-12, atol=1e-9
        )


def _split(total, cuts):
    edges = sorted({0, total, *cuts})
    return tuple(b - a for a, b in zip(edges[:-1], edges[1:]))


def test_halo_follows_the_parameters():
    px = PARAMS.in_pixels(SCALE)
    assert HALO == 2 * px.smooth_radius + px.min_distance + 2 * int(np.ceil(px.max_radius)) + 2
    assert halo_px(Params.from_preset("seed").in_pixels(SCALE), "seed") == 60  # 2*5 + 8 + 40 + 2


def test_small_chunks_are_merged_or_refused():
    assert fitted_chunks((50, 50, 7), 30, "y") == (50, 57)
    assert fitted_chunks((10, 40, 40), 30, "y") == (50, 40)
    assert fitted_chunks((96,), 300, "y") == (96,)
    assert fitted_chunks((20, 20), 30, "y") is None


def test_cli_refuses_chunks_smaller_than_the_halo(tmp_path, capsys):
    image, _ = synth(tmp_path / "s.ome.zarr", shape=(2, 200, 200), nuclei=2, seed=1)
    out = str(tmp_path / "out")
    args = ["segment", str(image), "-o", out, "--chunks", "1,40,-1"]
    assert main([*args, "--preset", "seed"]) == 2
    err = capsys.readouterr().err
    assert "at least 60 px" in err and err.count("\n") == 1
    # The default preset stitches too, with its own (smaller) halo: no smoothing term.
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "at least 50 px" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
    assert main(["segment", str(image), "-o", out, "--chunks", "1,50,100"]) == 0
    record = json.loads((tmp_path / "out" / "run.json").read_text())["stitching"]
    assert record["halo_px"] == 50 and record["blocks"] == 2 * 4 * 2


def test_chunks_too_small_for_the_halo_name_the_minimum(dense):
    stack, whole, _ = dense
    small = stack.chunk({"y": HALO - 1, "x": 70})
    with pytest.raises(InputError, match=f"at least {HALO} px"):
        bigseg.segment(small, params=PARAMS, stitch=True)
    # By default such chunks fall back to whole planes, exactly as before.
    np.testing.assert_array_equal(bigseg.segment(small, params=PARAMS).values, whole)


@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    y_cuts=st.lists(st.integers(1, SHAPE[1] - 1), max_size=3),
    x_cuts=st.lists(st.integers(1, SHAPE[2] - 1), max_size=3),
    z_chunk=st.integers(1, SHAPE[0]),
)
def test_random_chunkings_match_whole_planes(dense, y_cuts, x_cuts, z_chunk):
    stack, whole, whole_detections = dense
    chunks = {"z": z_chunk, "y": _split(SHAPE[1], y_cuts), "x": _split(SHAPE[2], x_cuts)}
    chunked = stack.chunk(chunks)
    labels = bigseg.segment(chunked, params=PARAMS)
    detections = _sorted(measure(labels, chunked).compute())
    _assert_same(labels.values, detections, whole, whole_detections)


def test_awkward_chunking_splits_regions_and_still_matches(dense):
    stack, whole, whole_detections = dense
    chunked = stack.chunk({"z": 2, "y": (HALO, HALO + 3, SHAPE[1] - 2 * HALO - 3), "x": HALO})
    labels = bigseg.segment(chunked, params=PARAMS)
    assert labels.data.numblocks[1:] == (3, 3)  # the last x chunk (140 % 40) is merged
    detections = _sorted(measure(labels, chunked).compute())
    _assert_same(labels.values, detections, whole, whole_detections)


def test_block_faces_are_crossed(dense, tmp_path):
    stack, _, _ = dense
    # Chains of touching nuclei are wider than the halo: exactness is not proven for them.
    with pytest.warns(UserWarning, match="within the 40 px halo of their block"):
        result = run(stack.chunk({"y": HALO, "x": HALO}), tmp_path / "out", params=PARAMS)
    record = json.loads((tmp_path / "out" / "run.json").read_text())["stitching"]
    assert record["halo_px"] == HALO and record["blocks"] == 5 * 9
    assert record["regions_across_faces"] > 5
    assert record["face_conflicts"] == 0
    assert len(result.nuclei) > 10


def test_split_planes_stay_lazy(dense):
    stack, _, _ = dense
    chunked = stack.chunk({"y": HALO, "x": HALO})
    with raise_if_dask_computes():
        labels = bigseg.segment(chunked, params=PARAMS)
        table = measure(labels, chunked)
    assert labels.data.chunks[1:] == ((40, 40, 70), (40, 40, 60))  # small remainders merged
    assert list(table.columns) == list(bigseg.measure(labels, chunked)._meta.columns)


def test_task_count_grows_linearly_with_blocks():
    counts = {}
    for n in (4, 8):
        data = dask.array.zeros((1, 2, 60 * n, 60 * n), np.uint16, chunks=(1, 1, 60, 60))
        stack = as_stack(data, scale=SCALE)
        labels = bigseg.segment(stack, params=PARAMS, threshold=1.0)
        blocks = int(np.prod(labels.data.numblocks))
        counts[blocks] = len(dict(labels.data.__dask_graph__()))
    (b1, t1), (b2, t2) = sorted(counts.items())
    assert b2 == 4 * b1
    assert t2 / b2 < 1.2 * t1 / b1  # tasks per block do not grow with the number of blocks


def test_empty_and_all_background_stacks():
    data = np.zeros((3, 130, 120), np.uint16)
    stack = as_stack(data, scale=SCALE).chunk({"y": HALO, "x": HALO})
    labels = bigseg.segment(stack, params=PARAMS, stitch=True)
    assert labels.values.max() == 0 and labels.dtype == np.int32
    assert len(measure(labels, stack).compute()) == 0


def test_time_series_with_split_planes():
    stack, _ = synthetic(shape=(4, 120, 120), nuclei=5, t=2, seed=4, radius_um=(4.0, 6.0))
    whole = bigseg.segment(stack, params=PARAMS).values
    split = bigseg.segment(stack.chunk({"y": 60, "x": 70}), params=PARAMS).values
    for a, b in zip(split.reshape((-1, 120, 120)), whole.reshape((-1, 120, 120))):
        assert_same_labels(a, b)


def test_run_with_split_planes_equals_whole_planes(dense, tmp_path):
    stack, _, _ = dense
    a = run(stack, tmp_path / "a", params=PARAMS)
    with pytest.warns(UserWarning, match="halo"):
        b = run(stack.chunk({"z": 3, "y": 61, "x": 50}), tmp_path / "b", params=PARAMS)
    # Nucleus ids are numbered by position, so identical detections give identical tables.
    pd.testing.assert_frame_equal(a.nuclei, b.nuclei, check_exact=False, rtol=1e-10)
    np.testing.assert_array_equal(
        open_stack(tmp_path / "a" / "labels.zarr").values,
        open_stack(tmp_path / "b" / "labels.zarr").values,
    )
    assert "stitching" not in a.record and b.record["stitching"]["face_conflicts"] == 0


def test_clusters_wider_than_the_halo_are_reported(tmp_path):
    # One long bright bar across the plane: one cluster, far wider than the halo. Its
    # markers along the ridge depend on where the blocks cut it: the guarantee does not
    # hold, and the run says so.
    data = np.full((2, 130, 400), 100, np.uint16)
    data[:, 50:70, 10:390] = 3000
    stack = as_stack(data, scale=SCALE)
    with pytest.warns(UserWarning, match="within the 40 px halo of their block"):
        result = run(stack.chunk({"x": 100}), tmp_path / "out", params=PARAMS)
    assert result.record["stitching"]["clusters_beyond_halo"] > 0
    whole = bigseg.segment(stack, params=PARAMS).values
    split = bigseg.segment(stack.chunk({"x": 100}), params=PARAMS).values
    assert not all(_same(a, b) for a, b in zip(split, whole))


def _same(a, b):
    try:
        assert_same_labels(a, b)
    except AssertionError:
        return False
    return True


def test_presets_without_a_block_kernel_use_whole_planes():
    from bigseg import methods
    from bigseg.methods import seed
    from bigseg.segment import plan_blocks as plan

    methods.register(
        methods.Method(
            name="planes-only",
            statistic=seed.recipe_otsu,
            kernel=seed.segment_planes,
            split_planes=False,
        )
    )
    data = dask.array.zeros((1, 2, 200, 200), np.uint16, chunks=(1, 1, 100, 100))
    px = PARAMS.in_pixels(SCALE)
    assert plan(data, px, None, "seed") is not None
    assert plan(data, px, None, "planes-only") is None
    with pytest.raises(InputError, match="whole planes"):
        plan(data, px, True, "planes-only")


# --------------------------------------------------------------------------- default preset

DEFAULT = Params(preset="default", smooth_radius=1.42, min_radius=2.84, max_radius=9.0)
DEFAULT_HALO = halo_px(DEFAULT.in_pixels(SCALE), "default")


def _touching(labels):
    """Foreground components that hold several regions, over all planes."""
    count = 0
    for plane in labels:
        components, n = ndi.label(plane > 0)
        pairs = np.unique(np.stack([components[plane > 0], plane[plane > 0]]), axis=1)
        count += int((np.bincount(pairs[0], minlength=n + 1) > 1).sum())
    return count


@pytest.fixture(scope="module")
def dense_default():
    """Touching nuclei, and the default preset's whole-plane result.

    Less crowded than ``dense``: there, chains of touching nuclei wider than
    the default preset's halo (36 px) come out differently in a few planes
    for some chunkings, and the run reports them (see the last test).
    """
    stack, _ = synthetic(shape=SHAPE, nuclei=40, seed=11, radius_um=(4.0, 6.0), min_separation=1.0)
    whole = bigseg.segment(stack, params=DEFAULT)
    assert whole.data.numblocks[1:] == (1, 1)
    assert _touching(whole.values) > 5  # components holding several regions
    detections = measure(whole, stack).compute()
    return stack, whole.values, _sorted(detections)


def test_default_halo_has_no_smoothing_term():
    px = DEFAULT.in_pixels(SCALE)
    assert DEFAULT_HALO == halo_px(px, "seed") - 2 * px.smooth_radius
    assert halo_px(Params.from_preset("default").in_pixels(SCALE), "seed") == 60  # seed's rule
    assert halo_px(Params.from_preset("default").in_pixels(SCALE), "default") == 50  # 8 + 40 + 2


def test_default_foreground_is_exact_in_every_block(dense_default):
    from bigseg.methods.default import split_foreground
    from bigseg.segment import _threshold_array
    from bigseg.stack import as_4d

    stack, _, _ = dense_default
    four = as_4d(stack)
    thresholds = _threshold_array(four, stack, None, DEFAULT)
    whole, _ = split_foreground(four.data.rechunk((1, -1, -1, -1)), thresholds, DEFAULT, SCALE)
    whole = whole.compute()
    assert 0.05 < whole.mean() < 0.5
    # Chunks smaller than the foreground's reach in z, y and x (merged for the computation).
    for chunks in [(1, 1, 3, 7), (1, 2, (60, 90), (13, 127)), (1, 5, 149, 140)]:
        data = four.data.rechunk(chunks)
        with raise_if_dask_computes():
            fg, _ = split_foreground(data, thresholds, DEFAULT, SCALE)
        assert fg.chunks == data.chunks and fg.dtype == bool
        np.testing.assert_array_equal(fg.compute(), whole)


def test_default_signal_prepass_is_exact_in_every_block(dense_default):
    # The method's pre-pass hands on the signal above the background map where foreground.
    from bigseg.methods.default import split_foreground, split_signal
    from bigseg.segment import _threshold_array
    from bigseg.stack import as_4d

    stack, _, _ = dense_default
    four = as_4d(stack)
    thresholds = _threshold_array(four, stack, None, DEFAULT)
    whole, _ = split_signal(four.data.rechunk((1, -1, -1, -1)), thresholds, DEFAULT, SCALE)
    whole = whole.compute()
    foreground, _ = split_foreground(four.data.rechunk((1, -1, -1, -1)), thresholds, DEFAULT, SCALE)
    np.testing.assert_array_equal(whole > 0, foreground.compute())
    for chunks in [(1, 1, 3, 7), (1, 2, (60, 90), (13, 127))]:
        data = four.data.rechunk(chunks)
        with raise_if_dask_computes():
            signal, _ = split_signal(data, thresholds, DEFAULT, SCALE)
        assert signal.chunks == data.chunks and signal.dtype == np.float32
        np.testing.assert_array_equal(signal.compute(), whole)


DEFAULT_CHUNKINGS = [
    {"z": 1, "y": DEFAULT_HALO, "x": DEFAULT_HALO},
    {"z": 1, "y": 70, "x": DEFAULT_HALO},
    {"z": 2, "y": (DEFAULT_HALO, DEFAULT_HALO + 3, SHAPE[1] - 2 * DEFAULT_HALO - 3), "x": 70},
    {"z": 5, "y": (61, 89), "x": (DEFAULT_HALO, 140 - DEFAULT_HALO)},
    {"z": 3, "y": -1, "x": (37, 41, 62)},  # the first x chunk is smaller than the halo
    {"z": 4, "y": (10, 60, 80), "x": -1},
]


@pytest.mark.parametrize("chunks", DEFAULT_CHUNKINGS)
def test_default_preset_split_planes_match_whole_planes(dense_default, chunks):
    stack, whole, whole_detections = dense_default
    chunked = stack.chunk(chunks)
    labels = bigseg.segment(chunked, params=DEFAULT)
    assert labels.data.chunks[1:] != ((SHAPE[1],), (SHAPE[2],))  # stitched, not whole planes
    detections = _sorted(measure(labels, chunked).compute())
    _assert_same(labels.values, detections, whole, whole_detections)


def test_default_preset_split_planes_stay_lazy(dense_default):
    stack, _, _ = dense_default
    chunked = stack.chunk({"y": DEFAULT_HALO, "x": DEFAULT_HALO})
    with raise_if_dask_computes():
        labels = bigseg.segment(chunked, params=DEFAULT)
        measure(labels, chunked)
    assert labels.data.chunks[1:] == ((36, 36, 36, 42), (36, 36, 68))  # remainders merged


def test_default_preset_run_with_split_planes_equals_whole_planes(dense_default, tmp_path):
    stack, _, _ = dense_default
    a = run(stack, tmp_path / "a", params=DEFAULT)
    with warnings.catch_warnings():  # clusters wider than the halo may be reported
        warnings.simplefilter("ignore", UserWarning)
        b = run(stack.chunk({"z": 2, "y": 61, "x": 50}), tmp_path / "b", params=DEFAULT)
    assert len(a.nuclei) > 10
    pd.testing.assert_frame_equal(a.nuclei, b.nuclei, check_exact=False, rtol=1e-10)
    # Plane-local labels are numbered differently; everything else is the same.
    pd.testing.assert_frame_equal(
        _sorted(a.detections).drop(columns="label"),
        _sorted(b.detections).drop(columns="label"),
        check_exact=False,
        rtol=1e-10,
    )
    np.testing.assert_array_equal(
        open_stack(tmp_path / "a" / "labels.zarr").values,
        open_stack(tmp_path / "b" / "labels.zarr").values,
    )
    stitching = b.record["stitching"]
    assert stitching["halo_px"] == DEFAULT_HALO and stitching["face_conflicts"] == 0
    assert stitching["regions_across_faces"] > 5


def test_default_preset_empty_stack_with_split_planes():
    data = np.zeros((3, 130, 120), np.uint16)
    stack = as_stack(data, scale=SCALE).chunk({"y": DEFAULT_HALO, "x": DEFAULT_HALO})
    labels = bigseg.segment(stack, params=DEFAULT, stitch=True)
    assert labels.data.numblocks[1:] == (3, 3)
    assert labels.values.max() == 0 and labels.dtype == np.int32
    assert len(measure(labels, stack).compute()) == 0


def test_default_preset_reports_clusters_wider_than_its_halo(dense, tmp_path):
    # On the crowded stack some chains of touching nuclei are wider than the halo: the
    # guarantee does not cover them (a few pixels of one plane differ here), and the run
    # says so.
    stack, _, _ = dense
    chunked = stack.chunk({"z": 1, "y": 70, "x": DEFAULT_HALO})
    with pytest.warns(UserWarning, match=f"within the {DEFAULT_HALO} px halo of their block"):
        result = run(chunked, tmp_path / "out", params=DEFAULT)
    assert result.record["stitching"]["clusters_beyond_halo"] > 0


def test_touching_regions_with_markers_of_equal_height_do_not_depend_on_the_block():
    from bigseg.synth import make_truth, render

    shape = (6, 400, 400)
    truth = make_truth(shape, 12, scale=SCALE, seed=5, radius_um=(3.0, 5.0))
    data = render(truth, (0, 0, 0, 0), (1, *shape), scale=SCALE, background=100,
                  max_value=4095, noise_seed=5)[0]  # fmt: skip
    stack = as_stack(data, scale=SCALE).chunk({"z": 3})
    params = Params.from_preset("seed")
    whole = bigseg.segment(stack, params=params, stitch=False).values
    for side in (133, 200):
        split = bigseg.segment(stack.chunk({"y": side, "x": side}), params=params)
        assert split.data.numblocks[1] > 1 and split.data.numblocks[2] > 1
        for a, b in zip(split.values, whole):
            assert_same_labels(a, b)
