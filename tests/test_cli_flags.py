"""Library errors name keywords; the command line rewrites them, in one place, as its flags."""

import os

import numpy as np
import pytest
import tifffile

from bigseg import InputError, Params, open_stack, run
from bigseg.cli import KEYWORD_FLAGS, SWITCH_FLAGS, as_flags, build_parser, main
from bigseg.pipeline import select_t

from .conftest import SCALE


@pytest.mark.parametrize(
    ("library", "cli"),
    [
        ("give it as scale=(z, y, x) in µm", "give it as --scale Z Y X in µm"),
        ("(e.g. scale=(1.5, 0.71, 0.71)).", "(e.g. --scale 1.5 0.71 0.71)."),
        ("use chunks=(z, -1, -1) (whole planes).", "use --chunks Z,-1,-1 (whole planes)."),
        ("min_radius=5 µm must be smaller than", "--min-radius 5 µm must be smaller than"),
        ("pass overwrite=True to replace", "pass --overwrite to replace"),
        ("or drop resume=True.", "or drop --resume."),
        ("drop the time selection (t=).", "drop the time selection (--t)."),
        ("files_axis='c' is not an axis", "--files-axis 'c' is not an axis"),
        (
            "bigseg uses scale= (hint; drop scale= to use it)",
            "bigseg uses --scale (hint; drop --scale to use it)",
        ),
        # Not keywords: left alone.
        ("read as z 1.5, y 0.7; n_t=3 and at=2", "read as z 1.5, y 0.7; n_t=3 and at=2"),
    ],
)
def test_as_flags_rewrites_keywords_as_flags(library, cli):
    assert as_flags(library) == cli


def test_every_mapped_flag_exists_on_the_command_line():
    parser = build_parser()
    flags = {
        option
        for sub in parser._subparsers._group_actions[0].choices.values()
        for action in sub._actions
        for option in action.option_strings
    }
    assert set(KEYWORD_FLAGS.values()) | set(SWITCH_FLAGS.values()) <= flags


@pytest.fixture
def plain_tif(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.zeros((3, 16, 16), np.uint16), photometric="minisblack")
    return path


def test_missing_voxel_size_names_the_keyword_then_the_flag(plain_tif, tmp_path, capsys):
    with pytest.raises(InputError, match=r"scale=\(z, y, x\)") as info:
        open_stack(plain_tif)
    assert "--" not in str(info.value)
    assert main(["segment", str(plain_tif), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--scale Z Y X" in err and "--scale 1.5 0.71 0.71" in err and "scale=" not in err


def test_radii_name_the_keywords_then_the_flags(plain_tif, tmp_path, capsys):
    with pytest.raises(InputError, match="min_radius=5.* max_radius=4") as info:
        Params.from_preset("default", min_radius=5, max_radius=4)
    assert "--" not in str(info.value)
    code = main(["segment", str(plain_tif), "-o", str(tmp_path / "o"), "--scale", *map(str, SCALE),
                 "--min-radius", "5", "--max-radius", "4"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--min-radius 5" in err and "--max-radius 4" in err
    assert "_radius" not in err


def test_channel_names_the_keyword_then_the_flag(tmp_path, capsys):
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, np.zeros((3, 2, 16, 16), np.uint16), imagej=True,
                     metadata={"axes": "ZCYX"})  # fmt: skip
    with pytest.raises(InputError, match=r"choose one with channel= \(0 to 1\)"):
        open_stack(path, scale=SCALE)
    with pytest.raises(InputError, match="channel=5 is out of range"):
        open_stack(path, scale=SCALE, channel=5)
    code = main(["segment", str(path), "-o", str(tmp_path / "o"), "--scale", *map(str, SCALE)])
    err = capsys.readouterr().err
    assert code == 2 and "choose one with --channel (0 to 1)" in err and "channel=" not in err


def test_output_and_time_selection_name_keywords_then_flags(plain_tif, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    stack = open_stack(plain_tif, scale=SCALE)
    with pytest.raises(InputError, match="overwrite=True") as info:
        run(stack, out)
    assert "--" not in str(info.value)
    with pytest.raises(InputError, match=r"\(t=\)"):
        select_t(stack, 0)
    code = main(["segment", str(plain_tif), "-o", str(out), "--scale", *map(str, SCALE)])
    err = capsys.readouterr().err
    assert code == 2 and "--overwrite" in err and "overwrite=" not in err
    code = main(["segment", str(plain_tif), "-o", str(tmp_path / "p"), "--scale",
                 *map(str, SCALE), "--t", "0"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "(--t)" in err and "t=" not in err


def _worker_settings(dask_worker):
    return (
        __import__("dask").config.get("distributed.worker.memory.pause"),
        __import__("os").environ.get("BIGSEG_COMPILED"),
        sorted(k for k in dask_worker.periodic_callbacks if "profile" in k),
    )


def test_local_workers_never_pause_and_small_ones_skip_the_compiled_kernels():
    # A worker paused by memory its allocator keeps would wait forever (bigseg's tasks hold
    # nothing to spill): the CLI's workers never pause; under 768 MiB they run SciPy's filters.
    # They run no statistical profiler (its history grows a worker by the run's duration).
    import argparse

    from bigseg.cli import dask_client

    args = argparse.Namespace(verbose=1, scheduler=None, workers=1, threads_per_worker=1,
                              memory_limit="512MiB", quiet=True)  # fmt: skip
    with dask_client(args) as client:
        (seen,) = client.run(_worker_settings).values()
    assert seen == (False, "0", [])
    assert os.environ.get("BIGSEG_COMPILED") is None  # this process's environment restored
