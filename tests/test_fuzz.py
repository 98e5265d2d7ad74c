"""Fuzzed inputs: corrupted TIFF headers, hostile Zarr / OME-Zarr metadata, damaged chunks.

Every case must end in one :class:`~bigseg.InputError` sentence or a valid stack, in
bounded time, with the input's bytes unchanged.  The number of cases per test is
``BIGSEG_FUZZ_EXAMPLES`` (default 80; four tests, so a few hundred in all); runs are
derandomized and use no example database, so CI is reproducible.
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bigseg import InputError, open_stack, run
from bigseg.io import write_ngff_image

from .conftest import SCALE

EXAMPLES = int(os.environ.get("BIGSEG_FUZZ_EXAMPLES", "80"))
PER_CASE_S = 20.0  # a case that takes longer counts as a hang

FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

DATA = np.random.default_rng(0).integers(0, 4000, size=(4, 24, 24), dtype=np.uint16)


# --------------------------------------------------------------------------- pristine inputs


def _tiff_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.tif"
        tifffile.imwrite(
            path,
            DATA,
            imagej=True,
            resolution=(1 / 0.71, 1 / 0.71),
            metadata={"axes": "ZYX", "spacing": 1.5, "unit": "um"},
        )
        return path.read_bytes()


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _ome_zarr_v3() -> dict[str, bytes]:
    import dask.array as da

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "s.ome.zarr"
        write_ngff_image(
            da.from_array(DATA, chunks=(2, 12, 12)),
            root,
            dims=("z", "y", "x"),
            scale=dict(zip("zyx", SCALE)),
        )
        return _files(root)


def _ome_zarr_v2() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "s.ome.zarr"
        group = zarr.open_group(root, mode="w", zarr_format=2)
        group.attrs["multiscales"] = [
            {
                "version": "0.4",
                "axes": [{"name": d, "type": "space", "unit": "micrometer"} for d in "zyx"],
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [{"type": "scale", "scale": list(SCALE)}],
                    }
                ],
            }
        ]
        array = group.create_array("0", shape=DATA.shape, chunks=(2, 12, 12), dtype=DATA.dtype)
        array[...] = DATA
        return _files(root)


PRISTINE = {"tiff": _tiff_bytes(), "zarr3": _ome_zarr_v3(), "zarr2": _ome_zarr_v2()}
META_NAMES = ("zarr.json", ".zattrs", ".zarray", ".zgroup")


class Case(dict):
    """The files of one corrupted input (name -> bytes), shown by what was done to them."""

    def __init__(self, files, how):
        super().__init__(files)
        self.how = how

    def __repr__(self):
        return f"Case({self.how})"


def _materialize(tmp: Path, kind: str, files: dict[str, bytes]) -> Path:
    if kind == "tiff":
        path = tmp / "s.tif"
        path.write_bytes(files[""])
        return path
    root = tmp / "s.ome.zarr"
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def _digest(path: Path) -> dict[str, str]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def check_case(kind: str, files: dict[str, bytes], scale=None) -> str:
    """Open and read a (corrupted) input; assert the outcome is a sentence or a valid stack."""
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as elsewhere:
        path = _materialize(Path(tmp), kind, files)
        before = _digest(path)
        listing = sorted(os.listdir(tmp))
        start = time.monotonic()
        try:
            stack = open_stack(path, scale=scale)
            assert stack.dims[-3:] == ("z", "y", "x")
            assert all(n > 0 for n in stack.shape)
            if stack.size <= 10**6:  # a small stack: the whole run, every chunk read
                result = run(path, Path(elsewhere) / "out", scale=scale)
                assert (result.output / "run.json").is_file()
                assert result.record["counts"]["nuclei"] == len(result.nuclei)
            else:  # a large (mostly missing) one: its first plane's corner
                part = stack[(0,) * (stack.ndim - 2)][:32, :32]
                assert part.data.compute(scheduler="sync").shape == part.shape
            outcome = "valid"
        except InputError as exc:
            message = str(exc)
            assert message and "\n" not in message and "Traceback" not in message, message
            assert len(message) < 1000, message
            outcome = "refused"
        elapsed = time.monotonic() - start
        assert elapsed < PER_CASE_S, f"took {elapsed:.1f} s"
        assert _digest(path) == before  # the input is never modified
        assert sorted(os.listdir(tmp)) == listing  # nothing written beside it
        return outcome


# --------------------------------------------------------------------------- strategies

HOSTILE_SCALARS = st.one_of(
    st.integers(min_value=-(2**70), max_value=-1),
    st.integers(min_value=2**31, max_value=2**70),
    st.sampled_from([0, 1, 10**12, 2**63 - 1, 2**64, -0.0, 1e308, -1e308, 1e-320]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "",
            "x",
            "float128",
            "complex256",
            "<U8",
            "|O",
            "object",
            "int4",
            "uint128",
            "bfloat16",
            "r8",
            "m8",
            "<M8[ns]",
            "zyx",
            "z",
            "0",
            "../..",
            "/",
            "pickle",
            "micrometer",
            "scale",
        ]
    ),  # fmt: skip
    st.text(max_size=12),
    st.booleans(),
    st.none(),
)


class Deep:
    """A value nested ``depth`` levels deep (alternating objects and lists), written as text."""

    def __init__(self, depth: int, leaf):
        self.depth, self.leaf = depth, leaf

    def text(self) -> str:
        opening = "".join('{"a":' if i % 2 == 0 else "[" for i in range(self.depth))
        closing = "".join("}" if i % 2 == 0 else "]" for i in reversed(range(self.depth)))
        return opening + json.dumps(self.leaf) + closing


HOSTILE = st.one_of(
    HOSTILE_SCALARS,
    st.recursive(
        HOSTILE_SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(
                st.sampled_from(["name", "type", "path", "scale", "axes", "datasets", "x"]),
                inner,
                max_size=4,
            ),
        ),
        max_leaves=10,
    ),
    st.builds(Deep, st.sampled_from([50, 2_000, 100_000]), HOSTILE_SCALARS),
)


def _paths(tree, prefix=()):
    """Every (key path) into a JSON tree, the root excluded."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list):
        items = enumerate(tree)
    else:
        return
    for key, value in items:
        yield prefix + (key,)
        yield from _paths(value, prefix + (key,))


def _replace(tree, path, value):
    node = tree
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


_DELETE = object()


def _dumps(tree) -> bytes:
    deep = []

    def swap(node):
        if isinstance(node, Deep):
            deep.append(node)
            return f"@@deep{len(deep) - 1}@@"
        if isinstance(node, dict):
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        return node

    text = json.dumps(swap(tree))
    for i, node in enumerate(deep):
        text = text.replace(f'"@@deep{i}@@"', node.text())
    return text.encode()


@st.composite
def hostile_metadata(draw, kind):
    """A copy of a pristine OME-Zarr with one metadata file made hostile."""
    files = dict(PRISTINE[kind])
    name = draw(st.sampled_from(sorted(n for n in files if n.rsplit("/", 1)[-1] in META_NAMES)))
    how = draw(st.sampled_from(["value", "value", "value", "delete", "root", "bytes"]))
    if how == "bytes":
        raw = bytearray(files[name])
        for _ in range(draw(st.integers(1, 8))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        files[name] = bytes(raw)
        return Case(files, f"random bytes in {name}")
    tree = json.loads(files[name])
    paths = list(_paths(tree))
    if how == "root" or not paths:
        path, value = (), draw(HOSTILE)
        tree = value
    else:
        path = draw(st.sampled_from(paths))
        value = _DELETE if how == "delete" else draw(HOSTILE)
        _replace(tree, path, value)
    files[name] = _dumps(tree)
    shown = "deleted" if value is _DELETE else f"= {_short(value)}"
    return Case(files, f"{name}{''.join(f'[{k!r}]' for k in path)} {shown}")


def _short(value) -> str:
    if isinstance(value, Deep):
        return f"<{value.depth} levels deep>"
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


@st.composite
def damaged_chunks(draw, kind):
    files = dict(PRISTINE[kind])
    chunks = sorted(n for n in files if n.rsplit("/", 1)[-1] not in META_NAMES)
    done = []
    for name in draw(st.lists(st.sampled_from(chunks), min_size=1, max_size=3, unique=True)):
        raw = bytearray(files[name])
        how = draw(st.sampled_from(["flip", "truncate", "empty", "garbage", "grow"]))
        done.append(f"{how} {name}")
        if how == "flip":
            for _ in range(draw(st.integers(1, 16))):
                raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        elif how == "truncate":
            raw = raw[: draw(st.integers(0, len(raw) - 1))]
        elif how == "empty":
            raw = bytearray()
        elif how == "garbage":
            raw = bytearray(draw(st.binary(min_size=1, max_size=64)))
        else:
            raw += draw(st.binary(min_size=1, max_size=64))
        files[name] = bytes(raw)
    return Case(files, ", ".join(done))


@st.composite
def damaged_tiff(draw):
    raw = bytearray(PRISTINE["tiff"])
    # The header, IFDs and tags of this small file lie in its first bytes and after the data.
    data_start = len(raw) - DATA.nbytes - 2048
    regions = [(0, 16), (0, 512), (0, len(raw) - 1), (max(0, data_start), len(raw) - 1)]
    done = []
    for _ in range(draw(st.integers(1, 12))):
        lo, hi = draw(st.sampled_from(regions))
        offset = draw(st.integers(lo, hi))
        chunk = draw(st.binary(min_size=1, max_size=8))
        raw[offset : offset + len(chunk)] = chunk
        done.append(f"{chunk.hex()}@{offset}")
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
        done.append(f"cut at {len(raw)}")
    return Case({"": bytes(raw)}, " ".join(done))


# --------------------------------------------------------------------------- tests


@pytest.mark.timeout(300)
@FUZZ
@given(files=damaged_tiff(), with_scale=st.booleans())
def test_fuzzed_tiff_is_a_sentence_or_a_stack(files, with_scale):
    check_case("tiff", files, scale=SCALE if with_scale else None)


@pytest.mark.timeout(300)
@FUZZ
@given(kind=st.sampled_from(["zarr3", "zarr2"]), data=st.data())
def test_hostile_zarr_metadata_is_a_sentence_or_a_stack(kind, data):
    check_case(
        kind, data.draw(hostile_metadata(kind)), scale=data.draw(st.sampled_from([None, SCALE]))
    )


@pytest.mark.timeout(300)
@FUZZ
@given(kind=st.sampled_from(["zarr3", "zarr2"]), data=st.data())
def test_damaged_zarr_chunks_are_a_sentence_or_a_stack(kind, data):
    check_case(kind, data.draw(damaged_chunks(kind)))


# --------------------------------------------------------------------------- named cases


def _edit(kind: str, name: str, edit) -> Case:
    files = dict(PRISTINE[kind])
    tree = json.loads(files[name])
    edit(tree)
    files[name] = _dumps(tree)
    return Case(files, f"edited {name}")


def _set(path, value):
    return lambda tree: _replace(tree, path, value)


NAMED = {
    # case: (kind, files, fragment of the expected sentence)
    "ome is a string": (
        "zarr3",
        _edit("zarr3", "zarr.json", _set(("attributes", "ome"), "x")),
        "invalid attributes 'ome'",
    ),
    "multiscales entry is a string": (
        "zarr2",
        _edit("zarr2", ".zattrs", _set(("multiscales", 0), "x")),
        "'multiscales[0]'",
    ),
    "scale holds strings": (
        "zarr3",
        _edit(
            "zarr3",
            "zarr.json",
            _set(
                (
                    "attributes",
                    "ome",
                    "multiscales",
                    0,
                    "datasets",
                    0,
                    "coordinateTransformations",
                    0,
                    "scale",
                ),
                ["a", "b", "c"],
            ),  # fmt: skip
        ),
        "coordinateTransformations[0].scale'",
    ),
    "dataset path missing": (
        "zarr2",
        _edit("zarr2", ".zattrs", lambda t: t["multiscales"][0]["datasets"][0].pop("path")),
        "datasets[0].path'",
    ),
    "huge shape": ("zarr3", _edit("zarr3", "0/zarr.json", _set(("shape", 0), 2**40)), "shape"),
    "huge shape (v2)": (
        "zarr2",
        _edit("zarr2", "0/.zarray", _set(("shape",), [2**62, 8, 8])),
        "shape",
    ),
    "deeply nested metadata": (
        "zarr2",
        Case({**PRISTINE["zarr2"], ".zattrs": Deep(100_000, 1).text().encode()}, "deep"),
        "as Zarr (RecursionError",
    ),
    "axes do not match the array": (
        "zarr3",
        _edit(
            "zarr3", "zarr.json", lambda t: t["attributes"]["ome"]["multiscales"][0]["axes"].pop()
        ),
        "lists 2 axes for an array of 3 dims",
    ),
    "codec configuration is a string": (
        "zarr3",
        _edit("zarr3", "0/zarr.json", lambda t: t["codecs"][-1].__setitem__("configuration", "x")),
        "Zarr",
    ),
}


@pytest.mark.parametrize("case", sorted(NAMED))
def test_named_hostile_metadata_is_one_sentence(case):
    kind, files, fragment = NAMED[case]
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        path = _materialize(Path(tmp), kind, files)
        before = _digest(path)
        with pytest.raises(InputError) as info:
            open_stack(path, scale=SCALE)
        assert _digest(path) == before
    message = str(info.value)
    assert fragment in message and "\n" not in message, message
    assert time.monotonic() - start < 5


def test_messages_quoting_corrupt_bytes_stay_on_one_short_line():
    assert str(InputError("bad byte \n\x00\r here")) == "bad byte   here"
    long = str(InputError("Input 'x' is bad (" + "[" * 5000 + "); fix it."))
    assert len(long) <= 800 and long.startswith("Input 'x'") and long.endswith("; fix it.")


CLI_CASES = ["ome is a string", "huge shape", "deeply nested metadata", "scale holds strings"]


@pytest.mark.slow
def test_fuzzed_inputs_through_the_cli_exit_2_without_traceback(tmp_path):
    inputs = {}
    for i, case in enumerate(CLI_CASES):
        kind, files, _ = NAMED[case]
        (tmp_path / str(i)).mkdir()
        inputs[case] = _materialize(tmp_path / str(i), kind, files)
    tiff = tmp_path / "tiff"
    tiff.mkdir()
    raw = bytearray(PRISTINE["tiff"])
    raw[4:8] = b"\xff\xff\xff\x7f"  # the first IFD offset points past the end of the file
    inputs["bad IFD offset"] = _materialize(tiff, "tiff", {"": bytes(raw)})
    for case, path in inputs.items():
        before = _digest(path)
        proc = subprocess.run(
            [sys.executable, "-m", "bigseg.cli", "segment", str(path), "-o", str(tmp_path / "o"),
             "--scale", *map(str, SCALE), "--no-progress"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 2, (case, proc.stderr)
        assert "Traceback" not in proc.stderr, (case, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, (case, proc.stderr)
        assert _digest(path) == before and not (tmp_path / "o").exists()
