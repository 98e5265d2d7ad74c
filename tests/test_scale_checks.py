"""Doubtful voxel sizes: far from the file's, in X Y Z order, in nm or mm."""

import warnings

import numpy as np
import pytest
import tifffile

from bigseg import InputError, ScaleWarning, as_stack, open_stack, run
from bigseg.cli import main
from bigseg.params import Params

from .conftest import synthetic

DATA = np.random.default_rng(0).integers(0, 4000, (5, 16, 16)).astype(np.uint16)


@pytest.fixture
def calibrated(tmp_path):
    """An ImageJ stack whose metadata says 1.5 µm in z and 0.5 µm pixels."""
    path = tmp_path / "calibrated.tif"
    tifffile.imwrite(
        path,
        DATA,
        imagej=True,
        resolution=(2.0, 2.0),
        metadata={"spacing": 1.5, "unit": "um", "axes": "ZYX"},
    )
    return path


@pytest.fixture
def plain(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, DATA)
    return path


def test_scale_far_from_the_file_is_warned_with_both_values(calibrated):
    differs = r"scale=\(1, 0.05, 0.05\) differs .* y, x .* 1.5 0.5 0.5"
    with pytest.warns(ScaleWarning, match=differs):
        stack = open_stack(calibrated, scale=(1, 0.05, 0.05))
    assert stack.attrs["scale"] == {"z": 1.0, "y": 0.05, "x": 0.05}  # the user's still wins
    assert stack.attrs["scale_source"] == "option"


def test_scale_within_2x_of_the_file_or_from_it_is_quiet(calibrated):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_stack(calibrated, scale=(2.0, 0.71, 0.71))  # 1.4x: a recalibration
        stack = open_stack(calibrated)
    assert stack.attrs["scale_source"].startswith("metadata:ImageJ")


def test_the_files_scale_reversed_is_named_as_x_y_z_order(calibrated):
    with pytest.warns(ScaleWarning, match="in reverse, X Y Z order: bigseg reads Z Y X"):
        open_stack(calibrated, scale=(0.5, 0.5, 1.5))


def test_x_y_z_order_without_metadata_is_warned(plain):
    with pytest.warns(ScaleWarning, match=r"X Y Z order.*scale=\(1.5, 0.71, 0.71\)"):
        open_stack(plain, scale=(0.71, 0.71, 1.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_stack(plain, scale=(0.71, 0.71, 0.71))  # isotropic: nothing to say
        open_stack(plain, scale=(4.0, 0.83, 0.83))


def test_the_command_line_says_each_warning_once(plain, tmp_path, capsys):
    # A run opens its input more than once (checks, then the run): one line each.
    from bigseg.cli import main

    args = ["segment", str(plain), "-o", str(tmp_path / "out"), "-q", "--scale", "0.5", "0.5", "2"]
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # every time it is raised: the lines are deduplicated
        assert main(args) == 0
    err = capsys.readouterr().err
    assert err.count("bigseg: warning:") == 1 and "X Y Z order" in err, err


@pytest.mark.parametrize(
    ("scale", "match"),
    [
        ((1500, 710, 710), r"in nm that is scale=\(1.5, 0.71, 0.71\)"),
        ((0.0015, 0.0007, 0.0007), r"in mm that is scale=\(1.5, 0.7, 0.7\)"),
        # In nm and in X Y Z order: one warning, whose suggestion is right on both counts.
        ((710, 710, 1500), r"in nm that is scale=\(1.5, 0.71, 0.71\)"),
    ],
)
def test_a_scale_in_nm_or_mm_is_warned(plain, scale, match):
    with pytest.warns(ScaleWarning, match=match) as caught:
        open_stack(plain, scale=scale)
    assert len(caught) == 1, [str(w.message) for w in caught]
    with pytest.warns(ScaleWarning, match=match):
        as_stack(DATA, scale=scale)


def test_a_scale_in_nm_is_blamed_on_the_scale_not_the_smoothing_radius(plain):
    with pytest.warns(ScaleWarning):
        stack = open_stack(plain, scale=(1500, 710, 710))
    with pytest.raises(InputError) as info:
        Params().in_pixels((1500, 710, 710), scale_source=stack.attrs["scale_source"])
    message = str(info.value)
    assert "1500 710 710 µm" in message and "scale=" in message and "not nm" in message
    assert "smooth_radius" not in message and "--" not in message
    # A smoothing radius the user set is still named when it is the one too small.
    with pytest.raises(InputError, match="smooth_radius=0.1 µm is under one pixel"):
        Params(smooth_radius=0.1).in_pixels((1.5, 0.71, 0.71), scale_source="option")


def test_run_names_the_scale_it_was_given(tmp_path):
    stack, _ = synthetic(shape=(3, 32, 32), nuclei=1)
    with pytest.warns(ScaleWarning):
        nm = as_stack(stack.data, scale=(1500, 710, 710))
    with pytest.raises(InputError, match=r"voxel size 1500 710 710 µm, z y x, from scale="):
        run(nm, tmp_path / "out", params=Params())


@pytest.mark.filterwarnings("default::bigseg._errors.ScaleWarning")
def test_cli_prints_the_warning_in_one_line_and_the_error_names_the_scale(
    calibrated, tmp_path, capsys
):
    code = main(["segment", str(calibrated), "-o", str(tmp_path / "o"), "--scale", "1500", "710",
                 "710", "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line]
    assert lines[0].startswith("bigseg: warning: --scale 1500 710 710 means voxels of")
    assert any(
        line.startswith("bigseg: warning: --scale 1500 710 710 differs by more than 2x")
        for line in lines
    )
    assert lines[-1].startswith("bigseg: error: The pixel size 710 µm")
    assert "--scale" in lines[-1] and "--smooth-radius" not in err
    assert "Traceback" not in err and ".py:" not in err
