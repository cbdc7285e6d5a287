"""Each benchmark reader on a miniature copy of its official layout (see conftest.py)."""

from __future__ import annotations

import csv
import os
import shutil

import cv2
import numpy as np
import openpyxl
import pytest
import scipy.io

from keras_lmiqa import datasets
from keras_lmiqa.errors import DatasetError

LIVEC_MOS = [50.0] * 7 + [63.9, 20.5, 85.1]  # as built by conftest.livec_root


def write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])


def cell_array(strings, shape):
    cells = np.empty(len(strings), dtype=object)
    cells[:] = list(strings)
    return cells.reshape(shape)


def by_name(dataset):
    return {os.path.basename(r.path): r for r in dataset}


def assert_quality_ok(dataset):
    qualities = [r.quality for r in dataset]
    assert min(qualities) == pytest.approx(0.0) and max(qualities) == pytest.approx(1.0)
    best = max(dataset, key=lambda r: r.quality)
    scores = [r.mos for r in dataset]
    assert best.mos == (max(scores) if dataset.scale.higher_better else min(scores))
    for record in dataset:
        assert os.path.isabs(record.path) and os.path.isfile(record.path)


# --------------------------------------------------------------------------- readers
def test_kadid10k(kadid_root):
    data = datasets.load("kadid10k", kadid_root)
    assert len(data) == 3 and data.synthetic and data.scale.higher_better and data.scale.kind == "MOS"
    assert [os.path.basename(r.path) for r in data] == ["I01_01_01.png", "I01_01_05.png", "I02_03_02.png"]
    assert [r.mos for r in data] == [4.57, 1.25, 3.0]
    assert data.groups == ["I01.png", "I02.png"]
    assert by_name(data)["I02_03_02.png"].quality == pytest.approx((3.0 - 1.25) / (4.57 - 1.25))
    assert_quality_ok(data)


def test_tid2013_case_insensitive_lookup(tid_root):
    data = datasets.load("tid2013", tid_root)
    names = [os.path.basename(r.path) for r in data]
    assert names == ["I01_01_1.bmp", "i25_01_1.bmp", "i01_17_5.bmp"]  # the names on disk
    assert [r.group for r in data] == ["i01", "i25", "i01"]
    assert [r.mos for r in data] == [5.51429, 3.0, 0.24242]
    assert data.synthetic and data.scale.higher_better
    assert_quality_ok(data)


def test_live_drops_references_and_prefers_realigned(live_root, spec):
    data = datasets.load("live", live_root)
    assert len(data) == len(spec.LIVE_KEPT) == 6
    expected = [(f"{folder}/img{n}.bmp", new, ref) for folder, n, ref, _, new in spec.LIVE_KEPT]
    got = [(os.path.relpath(r.path, os.path.realpath(live_root)), r.mos, r.group) for r in data]
    assert got == expected
    assert data.groups == ["bikes.bmp", "house.bmp", "parrots.bmp"]  # lighthouse only had orgs == 1 entries
    assert not data.scale.higher_better and data.scale.kind == "DMOS"
    best = max(data, key=lambda r: r.quality)
    assert best.mos == 11.0 and best.quality == pytest.approx(1.0)  # lowest DMOS = best
    assert_quality_ok(data)


def test_live_original_dmos(live_root, spec):
    old = [d for *_, d, _ in spec.LIVE_KEPT]
    assert [r.mos for r in datasets.load("live", live_root, realigned=False)] == old
    os.remove(os.path.join(live_root, "dmos_realigned.mat"))
    assert [r.mos for r in datasets.load("live", live_root)] == old
    with pytest.raises(DatasetError, match="dmos_realigned.mat"):
        datasets.load("live", live_root, realigned=True)


def test_live_wrong_entry_count(live_root):
    scipy.io.savemat(os.path.join(live_root, "refnames_all.mat"),
                     {"refnames_all": cell_array(["a.bmp"] * 981, (1, 981))})
    with pytest.raises(DatasetError, match=r"refnames_all has 981 entries, expected 982"):
        datasets.load("live", live_root)


def test_csiq_official(csiq_root, spec):
    data = datasets.load("csiq", csiq_root)
    assert [os.path.relpath(r.path, os.path.realpath(csiq_root)) for r in data] == [
        "dst_imgs/awgn/1600.AWGN.1.png", "dst_imgs/jpeg2000/1600.jpeg2000.3.png", "dst_imgs/blur/cactus.BLUR.2.png",
        "dst_imgs/jpeg/cactus.JPEG.5.png", "dst_imgs/contrast/cactus.contrast.1.png"]
    assert [r.mos for r in data] == [row[-1] for row in spec.CSIQ_ROWS]
    assert data.groups == ["1600", "cactus"]
    assert not data.scale.higher_better
    assert by_name(data)["cactus.contrast.1.png"].quality == 1.0 and by_name(data)["cactus.JPEG.5.png"].quality == 0.0
    assert_quality_ok(data)


def test_csiq_unknown_distortion(csiq_root):
    path = os.path.join(csiq_root, "csiq.DMOS.xlsx")
    book = openpyxl.load_workbook(path)
    book["all_by_image"]["D3"] = "pink noise"
    book.save(path)
    with pytest.raises(DatasetError, match="unknown distortion type 'pink noise'"):
        datasets.load("csiq", csiq_root)


def test_csiq_flattened(csiq_flat_root):
    data = datasets.load("csiq", csiq_flat_root)
    assert [os.path.basename(r.path) for r in data] == ["1600.AWGN.1.png", "1600.jpeg2000.3.png", "cactus.BLUR.2.png"]
    assert [r.group for r in data] == ["1600", "1600", "cactus"]
    assert [r.quality for r in data] == pytest.approx([1.0, 0.0, 1 - (0.25 - 0.062) / (0.4 - 0.062)])


def test_livec_drops_training_images(livec_root, spec):
    data = datasets.load("livec", livec_root)
    assert [os.path.basename(r.path) for r in data] == ["3.bmp", "10.bmp", "1000.JPG"]
    assert all("trainingImages" not in r.path for r in data)
    assert spec.LIVEC_MOS == LIVEC_MOS and [r.mos for r in data] == LIVEC_MOS[7:]
    assert data.groups == ["3.bmp", "10.bmp", "1000.JPG"] and not data.synthetic
    assert_quality_ok(data)


def test_koniq10k(koniq_root):
    data = datasets.load("koniq10k", koniq_root)
    assert len(data) == 4 and not data.has_official_split and not data.synthetic
    assert [r.mos for r in data] == [3.9, 1.5, 2.7, 3.2]
    assert all(os.path.basename(os.path.dirname(r.path)) == "512x384" for r in data)
    assert data.groups == [os.path.basename(r.path) for r in data]
    assert_quality_ok(data)
    big = datasets.load("koniq10k", koniq_root, resolution="1024x768", score="MOS_zscore")
    assert all(os.path.basename(os.path.dirname(r.path)) == "1024x768" for r in big)
    assert [r.mos for r in big] == [0.8, -1.9, -0.2, 0.3] and big.scale.kind == "MOS_zscore"


def test_koniq10k_official_split(koniq_sets):
    data = datasets.load("koniq10k", koniq_sets)
    assert [r.official_split for r in data] == ["train", "val", "test", "train"]


@pytest.mark.parametrize("options, message", [
    ({"resolution": "640x480"}, "resolution must be one of 512x384, 1024x768"),
    ({"score": "SD"}, "score must be one of MOS, MOS_zscore"),
    ({"resoluton": "512x384"}, "unknown option 'resoluton'"),
])
def test_koniq10k_bad_options(koniq_root, options, message):
    with pytest.raises(DatasetError, match=message):
        datasets.load("koniq10k", koniq_root, **options)


def test_spaq_builds_and_reuses_cache(spaq_root):
    data = datasets.load("spaq", spaq_root, short_side=16)
    cache = os.path.join(spaq_root, ".lmiqa_cache", "short16")
    assert [r.path for r in data] == [os.path.join(os.path.realpath(cache), f"0000{i}.png") for i in (1, 2, 3)]
    assert [r.mos for r in data] == [42.5, 71.0, 18.4] and data.groups == ["00001.jpg", "00002.jpg", "00003.jpg"]
    shapes = [cv2.imread(r.path).shape[:2] for r in data]
    assert shapes == [(21, 16), (16, 24), (10, 12)]  # shorter side 16; small images kept as they are
    assert sorted(os.listdir(cache)) == ["00001.png", "00002.png", "00003.png"]  # no temporary files left
    mtimes = {r.path: os.stat(r.path).st_mtime_ns for r in data}
    os.remove(data[1].path)
    again = datasets.load("spaq", spaq_root, short_side=16)
    assert [r.path for r in again] == [r.path for r in data]
    assert os.stat(data[0].path).st_mtime_ns == mtimes[data[0].path]  # reused, not rewritten
    assert os.stat(data[2].path).st_mtime_ns == mtimes[data[2].path]
    assert os.path.isfile(data[1].path)  # only the missing one was rebuilt


def test_spaq_custom_cache_dir_and_bad_image(spaq_root, tmp_path):
    target = str(tmp_path / "elsewhere")
    data = datasets.load("spaq", spaq_root, cache_dir=target, short_side=512)
    assert all(os.path.dirname(r.path) == os.path.realpath(target) for r in data)
    assert cv2.imread(data[0].path).shape[:2] == (40, 30)
    bad = os.path.join(spaq_root, "TestImage", "00002.jpg")
    with open(bad, "wb") as handle:
        handle.write(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"cannot decode image .*00002\.jpg"):
        datasets.load("spaq", spaq_root, short_side=16)


def test_livefb(livefb_root):
    data = datasets.load("livefb", livefb_root)
    assert len(data) == 5 and not data.has_official_split and not data.synthetic
    assert [r.group for r in data] == ["voc_emotic_ava/a.jpg", "voc_emotic_ava/b.jpg", "EE371R/c.jpg",
                                       "blur_dataset/d.jpg", "AVA__e.jpg"]
    assert_quality_ok(data)


def test_livefb_official_split(livefb_split):
    data = datasets.load("livefb", livefb_split)
    assert [r.official_split for r in data] == ["train", "val", "test", "train", "train"]
    os.remove(os.path.join(livefb_split, "labels=640_padded.csv"))
    with pytest.raises(DatasetError, match="labels=640_padded.csv"):
        datasets.load("livefb", livefb_split)


def test_csv_defaults(csv_path):
    data = datasets.load("csv", csv_path)
    assert [os.path.basename(r.path) for r in data] == ["a.png", "b.jpg", "c.bmp"]
    assert [r.mos for r in data] == [2.5, 4.0, 1.0] and data.groups == ["img/a.png", "img/sub/b.jpg", "img/c.bmp"]
    assert [r.quality for r in data] == pytest.approx([0.5, 1.0, 0.0]) and not data.has_official_split


def test_csv_options(csv_path, tmp_path):
    data = datasets.load("csv", csv_path, group_column="scene", higher_better=False)
    assert data.groups == ["s1", "s2"] and data.scale.kind == "DMOS"
    assert [r.quality for r in data] == pytest.approx([0.5, 0.0, 1.0])
    other = tmp_path / "other.csv"
    write_csv(other, ["file", "score", "split"], [["a.png", "3", "train"], ["c.bmp", "5", "test"]])
    data = datasets.load("csv", str(other), path_column="file", score_column="score",
                         image_root=os.path.join(os.path.dirname(csv_path), "img"))
    assert [r.official_split for r in data] == ["train", "test"]
    write_csv(other, ["file", "score", "split"], [["a.png", "3", "holdout"]])
    with pytest.raises(DatasetError, match="line 2: unknown split 'holdout'"):
        datasets.load("csv", str(other), path_column="file", score_column="score",
                      image_root=os.path.join(os.path.dirname(csv_path), "img"))


def test_unknown_dataset_suggests_closest():
    with pytest.raises(DatasetError, match="unknown dataset 'kadid'.*Did you mean 'kadid10k'"):
        datasets.load("kadid", "/nowhere")
    with pytest.raises(DatasetError, match="Did you mean 'tid2013'"):
        datasets.load("tid2031", "/nowhere")


def test_every_reader_has_a_layout():
    for name in datasets.NAMES:
        if name != "demo":
            assert datasets.layout(name) and isinstance(datasets.layout(name), str)


# ------------------------------------------------------------------- error paths
def rewrite_csv(path, edit):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    edit(rows)
    write_csv(path, rows[0], rows[1:])


def set_cell(path, sheet, cell, value):
    book = openpyxl.load_workbook(path)
    (book[sheet] if sheet else book.active)[cell] = value
    book.save(path)


def rewrite_mat(path, **changes):
    data = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    scipy.io.savemat(path, data)


def live_nan(root):
    path = os.path.join(root, "dmos_realigned.mat")
    dmos = scipy.io.loadmat(path)["dmos_new"]
    dmos[0, 0] = np.nan
    rewrite_mat(path, dmos_new=dmos)


def livec_names(root, first_kept):
    names = [f"t{i}.bmp" for i in range(1, 8)] + [first_kept, "10.bmp", "1000.JPG"]
    rewrite_mat(os.path.join(root, "Data", "AllImages_release.mat"), AllImages_release=cell_array(names, (10, 1)))


SPAQ_XLSX = os.path.join("Annotations", "MOS and Image attribute scores.xlsx")

# name -> (fixture, folder that must exist, label file, absent image,
#          wrong-column edit, escaping-path edit, bad-score edit) ; None = not applicable
CASES = {
    "kadid10k": ("kadid_root", "images", "dmos.csv", "images/I01_01_05.png",
                 lambda r: rewrite_csv(os.path.join(r, "dmos.csv"), lambda rows: rows[0].__setitem__(2, "mos")),
                 lambda r: rewrite_csv(os.path.join(r, "dmos.csv"), lambda rows: rows[1].__setitem__(0, "../../x.png")),
                 lambda r: rewrite_csv(os.path.join(r, "dmos.csv"), lambda rows: rows[1].__setitem__(2, "nan"))),
    "tid2013": ("tid_root", "distorted_images", "mos_with_names.txt", "distorted_images/i25_01_1.bmp",
                lambda r: open(os.path.join(r, "mos_with_names.txt"), "w").write("5.5 i01_01_1.bmp 0.3\n"),
                lambda r: open(os.path.join(r, "mos_with_names.txt"), "w").write("5.5 ../../i01_01_1.bmp\n"),
                lambda r: open(os.path.join(r, "mos_with_names.txt"), "w").write("NaN i01_01_1.bmp\n")),
    "live": ("live_root", "wn", "refnames_all.mat", "jp2k/img227.bmp",
             lambda r: rewrite_mat(os.path.join(r, "dmos_realigned.mat"), orgs=None),
             None,
             live_nan),
    "csiq": ("csiq_root", "dst_imgs", "csiq.DMOS.xlsx", "dst_imgs/blur/cactus.BLUR.2.png",
             lambda r: set_cell(os.path.join(r, "csiq.DMOS.xlsx"), "all_by_image", "G2", "score"),
             lambda r: set_cell(os.path.join(r, "csiq.DMOS.xlsx"), "all_by_image", "B3", "../../../x"),
             lambda r: set_cell(os.path.join(r, "csiq.DMOS.xlsx"), "all_by_image", "G3", "n/a")),
    "livec": ("livec_root", "Images", os.path.join("Data", "AllMOS_release.mat"), "Images/10.bmp",
              lambda r: scipy.io.savemat(os.path.join(r, "Data", "AllMOS_release.mat"), {"MOS": np.ones((1, 10))}),
              lambda r: livec_names(r, "../../x.bmp"),
              lambda r: rewrite_mat(os.path.join(r, "Data", "AllMOS_release.mat"),
                                    AllMOS_release=np.array([LIVEC_MOS[:7] + [np.nan, 1.0, 2.0]]))),
    "koniq10k": ("koniq_root", "512x384", "koniq10k_scores_and_distributions.csv", "512x384/10008004576.jpg",
                 lambda r: rewrite_csv(os.path.join(r, "koniq10k_scores_and_distributions.csv"),
                                       lambda rows: rows[0].__setitem__(7, "mos")),
                 lambda r: rewrite_csv(os.path.join(r, "koniq10k_scores_and_distributions.csv"),
                                       lambda rows: rows[1].__setitem__(0, "../x.jpg")),
                 lambda r: rewrite_csv(os.path.join(r, "koniq10k_scores_and_distributions.csv"),
                                       lambda rows: rows[1].__setitem__(7, "nan"))),
    "spaq": ("spaq_root", "TestImage", SPAQ_XLSX, "TestImage/00002.jpg",
             lambda r: set_cell(os.path.join(r, SPAQ_XLSX), "Sheet1", "A1", "Image"),
             lambda r: set_cell(os.path.join(r, SPAQ_XLSX), "Sheet1", "A2", "../../x.jpg"),
             lambda r: set_cell(os.path.join(r, SPAQ_XLSX), "Sheet1", "B2", "nan")),
    "livefb": ("livefb_root", None, "labels_image.csv", "EE371R/c.jpg",
               lambda r: rewrite_csv(os.path.join(r, "labels_image.csv"), lambda rows: rows[0].__setitem__(1, "MOS")),
               lambda r: rewrite_csv(os.path.join(r, "labels_image.csv"),
                                     lambda rows: rows[1].__setitem__(0, "../x.jpg")),
               lambda r: rewrite_csv(os.path.join(r, "labels_image.csv"), lambda rows: rows[1].__setitem__(1, ""))),
    "csv": ("csv_path", None, "labels.csv", "img/sub/b.jpg",
            lambda r: rewrite_csv(os.path.join(r, "labels.csv"), lambda rows: rows[0].__setitem__(1, "score")),
            lambda r: rewrite_csv(os.path.join(r, "labels.csv"), lambda rows: rows[1].__setitem__(0, "../x.png")),
            lambda r: rewrite_csv(os.path.join(r, "labels.csv"), lambda rows: rows[1].__setitem__(1, "nan"))),
}


def setup_case(request, name):
    fixture, folder, label, absent, wrong_column, escape, bad_score = CASES[name]
    target = request.getfixturevalue(fixture)
    root = os.path.dirname(target) if name == "csv" else target
    return target, root, folder, label, absent, wrong_column, escape, bad_score


@pytest.mark.parametrize("name", sorted(n for n in CASES if CASES[n][1] is not None))
def test_missing_folder(request, name):
    target, root, folder, *_ = setup_case(request, name)
    shutil.rmtree(os.path.join(root, folder))
    with pytest.raises(DatasetError) as error:
        datasets.load(name, target)
    message = str(error.value)
    assert message.startswith(f"{name}: missing folder") and os.path.join(root, folder) in message
    assert datasets.layout(name) in message


@pytest.mark.parametrize("name", sorted(CASES))
def test_missing_label_file(request, name):
    target, root, _, label, *_ = setup_case(request, name)
    os.remove(os.path.join(root, label))
    with pytest.raises(DatasetError) as error:
        datasets.load(name, target)
    message = str(error.value)
    assert f"{name}: missing file" in message and os.path.join(root, label) in message
    assert datasets.layout(name) in message


@pytest.mark.parametrize("name", sorted(CASES))
def test_absent_image(request, name):
    target, root, _, _, absent, *_ = setup_case(request, name)
    os.remove(os.path.join(root, absent))
    with pytest.raises(DatasetError, match="listed image not found") as error:
        datasets.load(name, target)
    assert os.path.basename(absent).lower() in str(error.value).lower()


@pytest.mark.parametrize("name", sorted(CASES))
def test_wrong_columns(request, name):
    target, root, _, _, _, wrong_column, *_ = setup_case(request, name)
    wrong_column(root)
    with pytest.raises(DatasetError) as error:
        datasets.load(name, target)
    message = str(error.value)
    expected = {"kadid10k": "no column 'dmos'", "tid2013": "line 1: expected 'MOS name'", "live": "no variable 'orgs'",
                "csiq": "no column 'dmos'", "livec": "no variable 'AllMOS_release' (variables found: MOS)",
                "koniq10k": "no column 'MOS'", "spaq": "no column 'Image name'", "livefb": "no column 'mos'",
                "csv": "no column 'mos' (columns found: 'path', 'score', 'scene')"}[name]
    assert expected in message and message.startswith(name + ":")


@pytest.mark.parametrize("name", sorted(n for n in CASES if CASES[n][5] is not None))
def test_path_escaping_root_is_refused(request, name):
    target, root, *_, escape, _ = setup_case(request, name)
    escape(root)
    with pytest.raises(DatasetError, match="escapes the dataset root"):
        datasets.load(name, target)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_score(request, name):
    target, root, *_, bad_score = setup_case(request, name)
    bad_score(root)
    with pytest.raises(DatasetError, match="not a finite number") as error:
        datasets.load(name, target)
    message = str(error.value)
    expected_line = {"tid2013": "line 1", "livec": "entry 8", "live": "entry 1", "csiq": "row 3",
                     "spaq": "row 2"}.get(name, "line 2")
    assert expected_line in message


def test_csv_missing_image_root(csv_path, tmp_path):
    with pytest.raises(DatasetError, match=f"csv: missing image folder {tmp_path / 'nope'}"):
        datasets.load("csv", csv_path, image_root=str(tmp_path / "nope"))


def test_csv_nan_names_row_and_file(csv_path):
    rewrite_csv(csv_path, lambda rows: rows[3].__setitem__(1, "NaN"))
    with pytest.raises(DatasetError) as error:
        datasets.load("csv", csv_path)
    assert str(error.value) == f"csv: {csv_path} line 4: score 'NaN' of img/c.bmp is not a finite number"
