"""Miniature copies of each benchmark dataset's official layout, built in tmp_path.

Each fixture returns the dataset root (a str) and writes tiny real images (cv2) and label
files in their real formats: CSV, whitespace text, MATLAB .mat (cell arrays as object
arrays, as MATLAB stores them) and .xlsx.
"""

from __future__ import annotations

import csv
import os
import types

import cv2
import numpy as np
import openpyxl
import pytest
import scipy.io


def write_image(path, seed: int = 0, size=(8, 8)) -> str:
    """A small random colour image; the format follows the extension."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(*size, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), pixels), path
    return str(path)


def write_csv(path, header, rows) -> str:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def write_xlsx(path, sheet, rows) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    book = openpyxl.Workbook()
    book.active.title = "notes"
    book.active.append(["see the other sheet"])
    ws = book.create_sheet(sheet)
    for row in rows:
        ws.append(list(row))
    book.save(path)
    return str(path)


def cell_array(strings, shape) -> np.ndarray:
    """Object array of strings: what scipy.io.savemat writes as a MATLAB cell array."""
    cells = np.empty(len(strings), dtype=object)
    cells[:] = list(strings)
    return cells.reshape(shape)


# --------------------------------------------------------------------------- KADID-10k
@pytest.fixture
def kadid_root(tmp_path):
    root = tmp_path / "kadid10k"
    for i, name in enumerate(["I01.png", "I02.png", "I01_01_01.png", "I01_01_05.png", "I02_03_02.png"]):
        write_image(root / "images" / name, seed=i)
    write_csv(root / "dmos.csv", ["dist_img", "ref_img", "dmos", "var"], [
        ["I01_01_01.png", "I01.png", "4.57", "0.53"],
        ["I01_01_05.png", "I01.png", "1.25", "0.20"],
        ["I02_03_02.png", "I02.png", "3.0", "0.91"],
    ])
    return str(root)


# ---------------------------------------------------------------------------- TID2013
@pytest.fixture
def tid_root(tmp_path):
    root = tmp_path / "tid2013"
    write_image(root / "reference_images" / "I01.BMP", 1)
    write_image(root / "reference_images" / "I25.BMP", 2)
    # Case on disk differs from the label file, as in the real archive.
    write_image(root / "distorted_images" / "I01_01_1.bmp", 3)
    write_image(root / "distorted_images" / "i25_01_1.bmp", 4)
    write_image(root / "distorted_images" / "i01_17_5.bmp", 5)
    (root / "mos_with_names.txt").write_text("5.51429 i01_01_1.bmp\n3.0 I25_01_1.BMP\n\n0.24242 i01_17_5.bmp\n")
    return str(root)


# ------------------------------------------------------------------------------- LIVE
LIVE_ORDER = (("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174))
# (folder, image number, reference, dmos, realigned dmos) of the distorted entries kept.
LIVE_KEPT = (
    ("jp2k", 1, "bikes.bmp", 60.0, 61.5),
    ("jp2k", 227, "house.bmp", 20.0, 21.0),
    ("jpeg", 1, "bikes.bmp", 40.0, 42.0),
    ("wn", 174, "parrots.bmp", 10.0, 11.0),
    ("gblur", 2, "house.bmp", 30.0, 33.0),
    ("fastfading", 174, "parrots.bmp", 50.0, 55.0),
)


@pytest.fixture
def live_root(tmp_path):
    root = tmp_path / "live"
    index = {}
    position = 0
    for folder, count in LIVE_ORDER:
        os.makedirs(root / folder)
        for number in range(1, count + 1):
            index[(folder, number)] = position
            position += 1
    assert position == 982
    dmos, dmos_new = np.zeros((1, 982)), np.zeros((1, 982))
    orgs = np.ones((1, 982))  # everything else is a reference copy (orgs == 1)
    refnames = ["lighthouse.bmp"] * 982
    for seed, (folder, number, ref, old, new) in enumerate(LIVE_KEPT):
        i = index[(folder, number)]
        dmos[0, i], dmos_new[0, i], orgs[0, i], refnames[i] = old, new, 0, ref
        write_image(root / folder / f"img{number}.bmp", seed)
    for seed, ref in enumerate(["bikes.bmp", "house.bmp", "parrots.bmp", "lighthouse.bmp"]):
        write_image(root / "refimgs" / ref, seed + 10)
    scipy.io.savemat(root / "dmos.mat", {"dmos": dmos, "orgs": orgs})
    scipy.io.savemat(root / "dmos_realigned.mat", {"dmos_new": dmos_new, "orgs": orgs, "dmos_std": np.ones((1, 982))})
    scipy.io.savemat(root / "refnames_all.mat", {"refnames_all": cell_array(refnames, (1, 982))})
    return str(root)


# ------------------------------------------------------------------------------- CSIQ
CSIQ_ROWS = (  # image, dst_idx, dst_type, dst_lev, dmos_std, dmos
    (1600, 1, "noise", 1, 0.02, 0.062),
    (1600, 3, "jpeg 2000", 3, 0.05, 0.4),
    ("cactus", 5, "blur", 2, 0.04, 0.25),
    ("cactus", 2, "jpeg", 5, 0.06, 0.8),
    ("cactus", 6, "contrast", 1, 0.01, 0.0),
)


@pytest.fixture
def csiq_root(tmp_path):
    root = tmp_path / "csiq"
    write_image(root / "src_imgs" / "1600.png", 0)
    write_image(root / "src_imgs" / "cactus.png", 1)
    for seed, name in enumerate(["awgn/1600.AWGN.1.png", "jpeg2000/1600.jpeg2000.3.png", "blur/cactus.BLUR.2.png",
                                 "jpeg/cactus.JPEG.5.png", "contrast/cactus.contrast.1.png"]):
        write_image(root / "dst_imgs" / name, seed + 2)
    # The official sheet: a title row and a leading empty column before the table.
    rows = [["CSIQ DMOS"], [None, "image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"]]
    rows += [[None, *row] for row in CSIQ_ROWS]
    write_xlsx(root / "csiq.DMOS.xlsx", "all_by_image", rows)
    return str(root)


@pytest.fixture
def csiq_flat_root(tmp_path):
    root = tmp_path / "csiq_flat"
    for seed, name in enumerate(["1600.AWGN.1.png", "1600.jpeg2000.3.png", "cactus.BLUR.2.png"]):
        write_image(root / "dst_imgs_all" / name, seed)
    (root / "csiq_label.txt").write_text("1600.AWGN.1.png 0.062\n1600.jpeg2000.3 0.4\ncactus.BLUR.2.png 0.25\n")
    return str(root)


# ------------------------------------------------------------------------------ LIVEC
LIVEC_NAMES = [f"t{i}.bmp" for i in range(1, 8)] + ["3.bmp", "10.bmp", "1000.JPG"]
LIVEC_MOS = [50.0] * 7 + [63.9, 20.5, 85.1]


@pytest.fixture
def livec_root(tmp_path):
    root = tmp_path / "livec"
    for i, name in enumerate(LIVEC_NAMES):
        folder = root / "Images" / ("trainingImages" if i < 7 else "")
        write_image(folder / name, i)
    os.makedirs(root / "Data")
    scipy.io.savemat(root / "Data" / "AllImages_release.mat",
                     {"AllImages_release": cell_array(LIVEC_NAMES, (len(LIVEC_NAMES), 1))})
    scipy.io.savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.array([LIVEC_MOS])})
    return str(root)


# --------------------------------------------------------------------------- KonIQ-10k
KONIQ = (("10004473376.jpg", 3.9, 0.8, "training"), ("10007357496.jpg", 1.5, -1.9, "validation"),
         ("10008004576.jpg", 2.7, -0.2, "test"), ("10012551040.jpg", 3.2, 0.3, "training"))


@pytest.fixture
def koniq_root(tmp_path):
    root = tmp_path / "koniq10k"
    header = ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"]
    rows = [[name, 0, 1, 2, 3, 4, 10, mos, 0.6, z] for name, mos, z, _ in KONIQ]
    root.mkdir()
    with open(root / "koniq10k_scores_and_distributions.csv", "w", newline="") as handle:
        csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC).writerows([header, *rows])
    for i, (name, *_rest) in enumerate(KONIQ):
        write_image(root / "512x384" / name, i)
        write_image(root / "1024x768" / name, i, size=(12, 16))
    return str(root)


@pytest.fixture
def koniq_sets(koniq_root):
    header = ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore", "set"]
    rows = [[name, 0, 1, 2, 3, 4, 10, mos, 0.6, z, split] for name, mos, z, split in KONIQ]
    write_csv(os.path.join(koniq_root, "koniq10k_distributions_sets.csv"), header, rows)
    return koniq_root


# ------------------------------------------------------------------------------- SPAQ
SPAQ = (("00001.jpg", 42.5, (40, 30)), ("00002.jpg", 71.0, (24, 36)), ("00003.jpg", 18.4, (10, 12)))


@pytest.fixture
def spaq_root(tmp_path):
    root = tmp_path / "spaq"
    for i, (name, _, size) in enumerate(SPAQ):
        write_image(root / "TestImage" / name, i, size=size)
    rows = [["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"]]
    rows += [[name, mos, 50, 50, 50, 50, 50] for name, mos, _ in SPAQ]
    write_xlsx(root / "Annotations" / "MOS and Image attribute scores.xlsx", "Sheet1", rows)
    return str(root)


# ----------------------------------------------------------------------------- LIVE-FB
LIVEFB = (("voc_emotic_ava/a.jpg", 72.1), ("voc_emotic_ava/b.jpg", 55.3), ("EE371R/c.jpg", 60.0),
          ("blur_dataset/d.jpg", 41.7), ("AVA__e.jpg", 66.6))


@pytest.fixture
def livefb_root(tmp_path):
    root = tmp_path / "livefb"
    for i, (name, _) in enumerate(LIVEFB):
        write_image(root / name, i)
    write_csv(root / "labels_image.csv", ["name", "mos", "height", "width"],
              [[name, mos, 8, 8] for name, mos in LIVEFB])
    return str(root)


@pytest.fixture
def livefb_split(livefb_root):
    write_csv(os.path.join(livefb_root, "labels640.csv"), ["name_image", "mos_image"], [["EE371R/c.jpg", 60.0]])
    write_csv(os.path.join(livefb_root, "labels=640_padded.csv"), ["name_image", "mos_image", "is_valid"], [
        ["voc_emotic_ava/a.jpg", 72.1, "False"],
        ["voc_emotic_ava/b.jpg", 55.3, "True"],
        ["blur_dataset/d.jpg", 41.7, "False"],
    ])
    return livefb_root


# -------------------------------------------------------------------------------- CSV
@pytest.fixture
def csv_path(tmp_path):
    root = tmp_path / "mine"
    for i, name in enumerate(["a.png", "sub/b.jpg", "c.bmp"]):
        write_image(root / "img" / name, i)
    return write_csv(root / "labels.csv", ["path", "mos", "scene"], [
        ["img/a.png", "2.5", "s1"], ["img/sub/b.jpg", "4.0", "s1"], ["img/c.bmp", "1", "s2"],
    ])


@pytest.fixture
def spec():
    """The constants the miniature datasets were built from, for assertions."""
    return types.SimpleNamespace(CSIQ_ROWS=CSIQ_ROWS, LIVE_KEPT=LIVE_KEPT, LIVEC_NAMES=LIVEC_NAMES, LIVEC_MOS=LIVEC_MOS,
                                 KONIQ=KONIQ, SPAQ=SPAQ, LIVEFB=LIVEFB)
