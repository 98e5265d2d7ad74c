import numpy as np
import pandas as pd
import pytest

from bigseg import InputError
from bigseg.score import match, score


def _table(points, r=None, t=None):
    df = pd.DataFrame(points, columns=["z_um", "y_um", "x_um"])
    if r is not None:
        df["r_um"] = r
    if t is not None:
        df["t"] = t
    return df


def test_perfect_and_partial():
    truth = _table([(0, 0, 0), (0, 10, 0), (0, 20, 0)], r=4.0)
    found = _table([(0, 0.5, 0), (0, 10, 1.0), (0, 40, 0)])
    s = score(found, truth)
    assert s.matched == 2 and s.precision == pytest.approx(2 / 3)
    assert s.recall == pytest.approx(2 / 3) and s.mean_error_um == pytest.approx(0.75)


def test_one_to_one_and_optimal():
    truth = _table([(0, 0, 0), (0, 1.5, 0)], r=4.0)  # tolerance 2 µm each
    found = _table([(0, 1.0, 0), (0, 2.5, 0)])
    pairs = match(found, truth)
    assert sorted(zip(pairs["found"], pairs["truth"])) == [(0, 0), (1, 1)]


def test_time_points_do_not_match_across():
    truth = _table([(0, 0, 0)], r=4.0, t=[0])
    found = _table([(0, 0, 0)], t=[1])
    assert score(found, truth).matched == 0


def test_tolerance_required_without_radius():
    with pytest.raises(InputError, match="--tolerance"):
        score(_table([(0, 0, 0)]), _table([(0, 0, 0)]))
    assert score(_table([(0, 0, 0)]), _table([(0, 0, 1)]), tolerance_um=1.5).f1 == 1.0


def test_empty_tables():
    truth = _table(np.zeros((0, 3)), r=[])
    s = score(_table(np.zeros((0, 3))), truth)
    assert s.f1 == 0.0 or s.recall == 1.0
    assert np.isnan(s.mean_error_um)
