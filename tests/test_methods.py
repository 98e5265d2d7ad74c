"""The method is the single source: registry, a third method in one file, step-by-step == run()."""

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage as ndi

import bigseg
from bigseg import Params, methods
from bigseg.chunked.maps import per_t_statistic
from bigseg.kernels import LABEL_DTYPE
from bigseg.kernels.threshold import otsu_from_counts, value_counts
from bigseg.kernels.watershed import filter_sizes
from bigseg.stack import as_4d

from .test_golden import SMALL, _3d


def _otsu(stack, params):
    """Otsu of the raw stack (not its projection), one per time point."""
    four = as_4d(stack)
    nbins = 65536

    def count(values):
        return value_counts(values, nbins)

    values = per_t_statistic(four.data, count, otsu_from_counts, nbins=nbins)
    out = xr.DataArray(values, dims=("t",), coords={"t": four.t.values}, name="threshold")
    return out if "t" in stack.dims else out.isel(t=0)


def _label(block, thresholds, px):
    out = np.zeros(block.shape, LABEL_DTYPE)
    for t in range(block.shape[0]):
        for z in range(block.shape[1]):
            labels, _ = ndi.label(block[t, z] > thresholds[t, 0, 0, 0])
            out[t, z] = filter_sizes(labels, min_radius=px.min_radius, max_radius=px.max_radius)
    return out


#: A third method: a plain Otsu threshold and connected components, one file's worth.
OTSU = methods.Method(
    name="otsu-label", statistic=_otsu, kernel=_label, halo=lambda px: int(px.max_radius) * 2 + 2
)


def test_a_third_method_is_one_registry_line(tmp_path):
    methods.register(OTSU)
    assert methods.get("otsu-label") is OTSU and "otsu-label" in methods.names()
    stack = _3d()
    params = Params.from_preset("otsu-label", **SMALL)
    labels = bigseg.segment(stack, params=params)
    assert labels.dtype == LABEL_DTYPE and labels.values.max() > 0
    split = bigseg.segment(stack.chunk({"y": 64, "x": 60}), params=params)
    np.testing.assert_array_equal(split.values > 0, labels.values > 0)
    result = bigseg.run(stack, tmp_path / "out", params=params)
    assert len(result.nuclei) > 0
    threshold = float(bigseg.global_threshold(stack, params=params).compute())
    assert result.thresholds[0] == threshold


def test_unknown_method_is_one_sentence():
    with pytest.raises(bigseg.InputError, match="Unknown method 'nope'"):
        methods.get("nope")


@pytest.mark.parametrize("preset", ["default", "seed"])
@pytest.mark.parametrize("chunks", [{"z": 4}, {"z": 4, "y": 64, "x": 60}])
def test_step_by_step_api_finds_what_run_finds(preset, chunks, tmp_path):
    stack = _3d().chunk(chunks)
    params = Params(preset=preset, **SMALL)
    result = bigseg.run(stack, tmp_path / "out", params=params)
    threshold = bigseg.global_threshold(stack, params=params).compute()
    np.testing.assert_array_equal(np.atleast_1d(threshold.values), result.thresholds)
    labels = bigseg.segment(stack, params=params)
    detections = bigseg.measure(labels, stack).compute()
    scale = bigseg.stack.scale_of(stack)
    linked = bigseg.link(detections, params=params, scale=scale)
    nuclei = bigseg.nuclei_table(linked, scale=scale)
    assert len(nuclei) == len(result.nuclei)
    np.testing.assert_allclose(
        np.sort(nuclei["intensity_sum"]), np.sort(result.nuclei["intensity_sum"]), rtol=1e-9
    )
    # The same columns of the same types: time points and planes are integers in both.
    common = [c for c in result.nuclei.columns if c in nuclei.columns]
    assert dict(nuclei[common].dtypes) == dict(result.nuclei[common].dtypes)
    assert all(nuclei[c].dtype == np.int64 for c in ("t", "z_first", "z_last"))


def test_link_with_a_fragment_dropping_method_needs_the_scale():
    with pytest.raises(bigseg.InputError, match="scale="):
        bigseg.link(bigseg.tables.empty_detections(), params=Params())


def test_kernels_import_no_dask_xarray_or_pandas():
    code = (
        "import sys\n"
        "import bigseg.kernels.filters, bigseg.kernels.threshold, bigseg.kernels.watershed\n"
        "import bigseg.kernels.regions, bigseg.kernels.lut\n"
        "bad = [m for m in ('dask', 'xarray', 'pandas') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
