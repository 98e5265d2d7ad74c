"""The benchmarks' datasets: one function per stack, each returning ``(stack, scale, truth)``.

``stack`` is a NumPy array, ``(z, y, x)`` or ``(t, z, y, x)`` (2D frames have one plane: ``z``
of size 1); ``scale`` the voxel size ``(z, y, x)`` in µm; ``truth`` a table of true nuclei
(``z_um, y_um, x_um, r_um``, and ``t`` for time series), a count of nuclei (``int``) or
``None`` (nothing known).

Real stacks live in ``../shared/data`` beside the checkout (see its README for sources and
licences) and are never copied into the repository; their functions raise ``FileNotFoundError``
when that folder is absent (``REAL`` lists them, :func:`real_available` says whether they can
be read).  Synthetic stacks come from today's :mod:`bigseg.synth`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: Voxel sizes (z, y, x) in µm.
SEED_SCALE = (1.5, 0.71, 0.71)  # the recipe's values (the TIFF's tags say otherwise)
QCANET_SCALE = (1.75, 0.8, 0.8)  # BBBC050, z/xy ratio 2.18 from the dataset's configuration
STARDIST_SCALE = (1.0, 1.0, 1.0)  # none stored: isotropic 1 µm
SYNTH_SCALE = (1.5, 0.71, 0.71)


def real_available() -> bool:
    """Whether ``../shared/data`` (the real stacks) is beside the checkout."""
    return DATA.is_dir()


def _read(relative: str) -> np.ndarray:
    import tifffile

    path = DATA / relative
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the real stacks live in {DATA}.")
    return tifffile.imread(path)


def qcanet_8cell() -> tuple[np.ndarray, tuple[float, float, float], pd.DataFrame]:
    """BBBC050 8-cell embryo (51 x 120 x 122) and its 8 manual centres (``r_um`` included)."""
    image = _read("qcanet_bbbc050/8_cell_stage_image.tif")
    truth = pd.read_csv(DATA / "qcanet_bbbc050" / "8_cell_stage_centres.csv")
    return image, QCANET_SCALE, truth


def qcanet_16cell() -> tuple[np.ndarray, tuple[float, float, float], int]:
    """BBBC050 16-cell embryo (51 x 120 x 122); the truth is a count: 16."""
    return _read("qcanet_bbbc050/16_cell_stage_image.tif"), QCANET_SCALE, 16


def stardist_synthetic() -> tuple[np.ndarray, tuple[float, float, float], pd.DataFrame]:
    """StarDist's dense synthetic 3D test image (31 x 61 x 57) and its 51 labelled nuclei."""
    image = _read("stardist_synthetic/img3d.tif")
    return image, STARDIST_SCALE, label_truth(_read("stardist_synthetic/mask3d.tif"))


def seed_stack() -> tuple[np.ndarray, tuple[float, float, float], None]:
    """The seed recipe's confocal stack (21 x 114 x 112); no truth (the recipe says 4 or 5)."""
    return _read("seed/test_nuclei_stack.tif"), SEED_SCALE, None


#: Real images fetched from the package registry by ``make real-2d`` (bench/fetch_real.py).
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "real"
#: The pixel sizes (µm) StarDist's 2D image is scored at: its own is not stored, and its
#: nuclei (median radius 11.8 px) are 4.7-9.4 µm in radius across these.
DSB_PIXELS = (0.4, 0.5, 0.65, 0.8)


def dsb_available() -> bool:
    """Whether StarDist's 2D test image has been fetched (``make real-2d``)."""
    return (CACHE / "dsb2018_2d" / "mask2d.tif").exists()


def dsb2018_2d(pixel: float = 0.5) -> tuple[np.ndarray, tuple[float, float, float], pd.DataFrame]:
    """StarDist's 2D test image (DSB 2018, ``(1, 512, 512)``) and its 125 labelled nuclei.

    Real, dense, touching HeLa-like nuclei, many oval; ``pixel`` µm per pixel (none is
    stored).  The truth's ``r_um`` is each label's equivalent disc radius.  Raises
    ``FileNotFoundError`` until ``make real-2d`` has fetched it.
    """
    import tifffile
    from skimage.measure import regionprops_table

    folder = CACHE / "dsb2018_2d"
    if not dsb_available():
        raise FileNotFoundError(f"{folder} not found: `make real-2d` fetches it.")
    image = tifffile.imread(folder / "img2d.tif")
    p = regionprops_table(tifffile.imread(folder / "mask2d.tif"), properties=("centroid", "area"))
    truth = pd.DataFrame(
        {
            "z_um": 0.0,
            "y_um": p["centroid-0"] * pixel,
            "x_um": p["centroid-1"] * pixel,
            "r_um": np.sqrt(p["area"] / np.pi) * pixel,
        }
    )
    return image[None], (1.0, pixel, pixel), truth


#: The real stacks by name, in the order the benchmarks print them.
REAL = {
    "qcanet 8-cell": qcanet_8cell,
    "qcanet 16-cell": qcanet_16cell,
    "stardist synthetic": stardist_synthetic,
    "seed stack": seed_stack,
}


def label_truth(mask: np.ndarray, scale=(1.0, 1.0, 1.0)) -> pd.DataFrame:
    """Centres and equivalent-sphere radii (µm) of the objects of a label image."""
    from skimage.measure import regionprops_table

    p = regionprops_table(mask, properties=("label", "centroid", "area"))
    voxel = float(np.prod(scale))
    return pd.DataFrame(
        {
            "z_um": p["centroid-0"] * scale[0],
            "y_um": p["centroid-1"] * scale[1],
            "x_um": p["centroid-2"] * scale[2],
            "r_um": np.cbrt(3 * p["area"] * voxel / (4 * np.pi)),
        }
    )


def synth_hard(
    shape=(40, 256, 256), nuclei=40, *, seed=1, t=1, offset=0.0, scale=SYNTH_SCALE
) -> tuple[np.ndarray, tuple[float, float, float], pd.DataFrame]:
    """A ``bigseg synth --difficulty hard`` stack, rendered in memory.

    ``offset`` is a camera offset (grey levels) added to the 12-bit stack afterwards: the
    same image, shifted up (its saturated nuclei stay at 4095 + offset).  With
    ``shape[0] == 1`` every frame is 2D (discs in one plane).  The stack is ``(z, y, x)`` for
    ``t == 1``, ``(t, z, y, x)`` otherwise.
    """
    from bigseg.synth import DIFFICULTY, make_truth, render

    hard = DIFFICULTY["hard"]
    truth = make_truth(shape, nuclei, scale=scale, t=t, seed=seed, **hard["truth"])
    image = render(truth, (0, 0, 0, 0), (t, *shape), scale=scale, noise_seed=seed, **hard["render"])
    if offset:
        image = image + np.uint16(offset)
    return (image[0] if t == 1 else image), tuple(scale), truth


def synth_2d_series(
    size=(256, 256), nuclei=40, *, t=4, seed=3, offset=0.0
) -> tuple[np.ndarray, tuple[float, float, float], pd.DataFrame]:
    """A hard 2D time-lapse from :func:`synth_hard`: ``t`` frames of one plane, ``(t, 1, y, x)``."""
    return synth_hard((1, *size), nuclei, seed=seed, t=t, offset=offset)


def synth_like(
    shape, nuclei, *, radius_px, brightness, touching, offset, t=1, seed=4, scale=SYNTH_SCALE
) -> tuple[np.ndarray, tuple[float, float, float], pd.DataFrame]:
    """Today's generator set to mimic one of the issue's held-out kinds (approximately).

    Radii uniform over ``radius_px`` (y/x pixels), brightness log-normal over tenfold around
    the geometric mean of ``brightness``, a fraction ``touching`` of the nuclei touching
    another, read noise 20, a camera ``offset`` in the 16-bit range.
    """
    from bigseg.synth import make_truth, render

    radius_um = (radius_px[0] * scale[1], radius_px[1] * scale[1])
    truth = make_truth(
        shape, nuclei, scale=scale, t=t, seed=seed, radius_um=radius_um, brightness=brightness,
        brightness_spread=10.0, touching=touching,
    )  # fmt: skip
    image = render(
        truth, (0, 0, 0, 0), (t, *shape), scale=scale, noise_seed=seed, offset=offset,
        read_noise=20.0, max_value=65535,
    )  # fmt: skip
    return (image[0] if t == 1 else image), tuple(scale), truth


#: The synthetic stacks of ``bench/peers.py``: today's generator, hard difficulty, and two
#: approximations of the issue's held-out kinds (dense 2D HeLa-like frames over a camera
#: offset of 33 000; 3D stacks of radius 4.5-12 px with 15 % touching over a dark offset).
SYNTH = {
    "synth moderate hard": lambda: synth_hard(nuclei=40, seed=1),
    "synth dense hard": lambda: synth_hard(nuclei=90, seed=2),
    "synth hard offset 30000": lambda: synth_hard(nuclei=40, seed=1, offset=30000.0),
    "synth 2D series hard offset 30000": lambda: synth_2d_series(offset=30000.0),
    "hela-like 2D series": lambda: synth_like(
        (1, 700, 1100),
        160,
        t=3,
        radius_px=(6, 14),
        brightness=(70.0, 1500.0),
        touching=0.3,
        offset=33000.0,
    ),  # fmt: skip
    "held-out-like 3D": lambda: synth_like(
        (40, 384, 384),
        170,
        radius_px=(4.5, 12),
        brightness=(300.0, 3000.0),
        touching=0.15,
        offset=1000.0,
    ),  # fmt: skip
}
