"""Dataset converters on small fixtures in each dataset's published format; splits."""

from __future__ import annotations

import csv
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qprobe.errors import ManifestError, UnknownNameError
from qprobe.eval.datasets import DATASETS, list_datasets, load_dataset, parse_dataset_spec
from qprobe.eval.datasets.splits import make_splits, read_splits, write_splits
from qprobe.manifest import validate_row

LABELS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "labels"


def img(path: Path, w: int = 24, h: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(zlib.crc32(str(path).encode())).integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def check_rows(rows: list, n: int) -> None:
    assert len(rows) == n
    for r in rows:
        validate_row(r.to_dict())
        assert 1.0 <= r.mos <= 5.0 and r.mos_raw is not None and Path(r.path).is_file()


def test_registry_names() -> None:
    assert list_datasets() == [
        "agiqa3k",
        "clive",
        "csiq",
        "kadid10k",
        "koniq10k",
        "pipal",
        "qprobe-bench",
        "spaq",
        "tid2013",
        "uhdiqa",
    ]
    for name in list_datasets():
        meta = DATASETS.metadata(name)
        assert meta["layouts"] and len(meta["raw_scale"]) == 2
    with pytest.raises(UnknownNameError, match="did you mean 'koniq10k'"):
        load_dataset("koniq", "/nowhere")
    assert parse_dataset_spec("clive:/a:b") == ("clive", "/a:b")
    with pytest.raises(ValueError, match="NAME:PATH"):
        parse_dataset_spec("clive")


# -- CLIVE ---------------------------------------------------------------------------


def test_clive_shared_data(clive_dir: Path) -> None:
    rows = load_dataset("clive", clive_dir)
    assert len(rows) == 820
    t1 = next(r for r in rows if r.id == "t1")
    assert t1.mos_raw == pytest.approx(63.9634) and t1.mos == pytest.approx(1 + 4 * 63.9634 / 100)
    assert t1.mos_std == pytest.approx(18.3762 * 4 / 100) and t1.extra["is_training_image"] is True
    assert (t1.width, t1.height) == (500, 500) and all(r.split == "all" for r in rows)
    assert len({r.id for r in rows}) == 820


def test_clive_official_challengedb_layout(tmp_path: Path) -> None:
    from scipy.io import savemat

    root = tmp_path / "ChallengeDB_release"
    names = ["t1.bmp", "t2.bmp", "3.bmp", "5.bmp"]
    names_cell = np.empty((len(names), 1), dtype=object)
    for i, n in enumerate(names):
        names_cell[i, 0] = n
    (root / "Data").mkdir(parents=True)
    savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": names_cell})
    savemat(
        root / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.array([[63.9634, 25.3353, 47.2, 80.1]])}
    )
    savemat(
        root / "Data" / "AllStdDev_release.mat",
        {"AllStdDev_release": np.array([[18.3762, 13.6514, 20.0, 10.0]])},
    )
    img(root / "Images" / "trainingImages" / "t1.bmp")
    img(root / "Images" / "trainingImages" / "t2.bmp")
    img(root / "Images" / "3.bmp")
    img(root / "Images" / "5.bmp")
    rows = load_dataset("clive", root)
    check_rows(rows, 4)
    assert [r.id for r in rows] == ["t1", "t2", "3", "5"]
    assert rows[0].extra["is_training_image"] and not rows[2].extra["is_training_image"]
    assert rows[3].mos == pytest.approx(1 + 4 * 0.801)
    (root / "Images" / "5.bmp").unlink()
    with pytest.raises(ManifestError, match="1 image"):
        load_dataset("clive", root)


def test_clive_unified_csv(tmp_path: Path) -> None:
    csvp = write(
        tmp_path / "LIVE_Challenge.csv",
        "dis_img_path,dis_type,score\n"
        "LIVE_Challenge/Images/101.bmp,Authentic,66.3595\nLIVE_Challenge/Images/102.bmp,Authentic,44.695\n",
    )
    img(tmp_path / "LIVE_Challenge" / "Images" / "101.bmp")
    img(tmp_path / "LIVE_Challenge" / "Images" / "102.bmp")
    rows = load_dataset("clive", csvp)
    check_rows(rows, 2)
    assert rows[0].id == "101" and rows[0].extra["distortion"] == "Authentic"


# -- KonIQ ------------------------------------------------------------------------------

KONIQ_OFFICIAL = """image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,set
10004473376.jpg,0.0,0.0,0.238095238095,0.695238095238,0.0666666666667,105,77.3836206897,0.527277894494,training
10007357496.jpg,0.0,0.03125,0.46875,0.489583333333,0.0104166666667,96,68.7285714286,0.580003024795,test
10007903636.jpg,0.0104166666667,0.0,0.208333333333,0.760416666667,0.0208333333333,96,78.6285714286,0.527219618675,training
"""


def test_koniq_official(tmp_path: Path) -> None:
    write(tmp_path / "koniq10k_distributions_sets_official.csv", KONIQ_OFFICIAL)
    for n in ("10004473376", "10007357496", "10007903636"):
        img(tmp_path / "1024x768" / f"{n}.jpg")
    rows = load_dataset("koniq10k", tmp_path)
    check_rows(rows, 3)
    r0 = rows[0]
    assert r0.mos == pytest.approx(3.82857142857, abs=1e-6)  # = the unified file's score
    assert r0.mos_raw == pytest.approx(77.3836206897) and r0.mos_std == pytest.approx(0.527277894494)
    assert [r.split for r in rows] == ["train", "test", "train"] and r0.extra["n_ratings"] == 105
    assert [r.id for r in load_dataset("koniq10k", tmp_path, split="test")] == ["10007357496"]


def test_koniq_scores_and_distributions_and_unified(tmp_path: Path) -> None:
    text = KONIQ_OFFICIAL.replace(",set", "").replace(",training", "").replace(",test", "")
    write(tmp_path / "koniq10k_scores_and_distributions.csv", text)
    for n in ("10004473376", "10007357496", "10007903636"):
        img(tmp_path / "1024x768" / f"{n}.jpg")
    rows = load_dataset("koniq10k", tmp_path)
    assert [r.split for r in rows] == ["all"] * 3
    uni = write(
        tmp_path / "KonIQ-10k.csv",
        "dis_img_path,dis_type,score\nKonIQ-10k/1024x768/10004473376.jpg,Authentic,3.82857142857143\n",
    )
    img(tmp_path / "KonIQ-10k" / "1024x768" / "10004473376.jpg")
    u = load_dataset("koniq10k", uni)
    assert u[0].id == rows[0].id and u[0].mos == pytest.approx(rows[0].mos)


# -- SPAQ ---------------------------------------------------------------------------------


def test_spaq_xlsx(tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"])
    ws.append(["00001.jpg", 48.86, 49.0, 50.1, 52.3, 40.0, 45.5])
    ws.append(["00002.jpg", 62.5, 60.0, 61.0, 62.0, 63.0, 64.0])
    (tmp_path / "Annotations").mkdir()
    wb.save(tmp_path / "Annotations" / "MOS and Image attribute scores.xlsx")
    img(tmp_path / "TestImage" / "00001.jpg")
    img(tmp_path / "TestImage" / "00002.jpg")
    rows = load_dataset("spaq", tmp_path)
    check_rows(rows, 2)
    assert rows[0].id == "00001" and rows[0].mos == pytest.approx(1 + 4 * 0.4886)
    assert rows[0].extra["attr_sharpness"] == pytest.approx(45.5)


def test_spaq_unified(tmp_path: Path) -> None:
    csvp = write(
        tmp_path / "SPAQ.csv",
        "dis_img_path,dis_type,score\nSPAQ/Dataset/TestImage/00001.jpg,Authentic,48.86\n",
    )
    img(tmp_path / "SPAQ" / "Dataset" / "TestImage" / "00001.jpg")
    rows = load_dataset("spaq", csvp)
    assert rows[0].id == "00001" and rows[0].mos == pytest.approx(1 + 4 * 0.4886)


# -- KADID-10k ----------------------------------------------------------------------------


def test_kadid_dmos_csv(tmp_path: Path) -> None:
    write(
        tmp_path / "dmos.csv",
        "dist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,4.57,0.496\n"
        "I01_01_02.png,I01.png,4.33,0.869\nI02_10_05.png,I02.png,1.2,0.2\n",
    )
    for n in ("I01_01_01", "I01_01_02", "I02_10_05"):
        img(tmp_path / "images" / f"{n}.png")
    rows = load_dataset("kadid10k", tmp_path)
    check_rows(rows, 3)
    r0 = rows[0]
    assert r0.mos == pytest.approx(4.57) and r0.mos_std == pytest.approx(np.sqrt(0.496))
    assert r0.source_id == "I01" and r0.extra["distortion"] == "gaussian_blur" and r0.extra["level"] == 1
    assert rows[2].extra["distortion"] == "jpeg"


def test_kadid_unified_real_header(tmp_path: Path) -> None:
    csvp = write(
        tmp_path / "KADID-10k.csv",
        "dis_img_path,dis_type,ref_img_path,score\n"
        "KADID-10k/images/I01_01_01.png,GBLUR,KADID-10k/images/I01.png,4.57\n",
    )
    img(tmp_path / "KADID-10k" / "images" / "I01_01_01.png")
    rows = load_dataset("kadid10k", csvp)
    assert rows[0].source_id == "I01" and rows[0].extra["distortion"] == "GBLUR"


# -- PIPAL ---------------------------------------------------------------------------------


def test_pipal_label_txt(tmp_path: Path) -> None:
    write(tmp_path / "Train_Label" / "A0001.txt", "A0001_00_00.bmp,1520.0648\nA0001_00_01.bmp,1437.0798\n")
    write(tmp_path / "Train_Label" / "A0002.txt", "A0002_00_00.bmp,916.7136\n")
    img(tmp_path / "Train_Dist" / "A0001_00_00.bmp")
    img(tmp_path / "Distortion_2" / "A0001_00_01.bmp")
    img(tmp_path / "Train_Dist" / "A0002_00_00.bmp")
    rows = load_dataset("pipal", tmp_path)
    check_rows(rows, 3)
    assert rows[0].mos == pytest.approx(1 + 4 * (1520.0648 - 900) / 1000)
    assert {r.source_id for r in rows} == {"A0001", "A0002"} and {r.split for r in rows} == {"train"}


# -- TID2013 ---------------------------------------------------------------------------------


def test_tid2013_mos_with_names(tmp_path: Path) -> None:
    write(
        tmp_path / "mos_with_names.txt", "5.51429 I01_01_1.bmp\n5.56757 I01_01_2.bmp\n4.94444 i02_08_3.bmp\n"
    )
    write(tmp_path / "mos_std.txt", "0.13956\n0.18815\n0.1\n")
    img(tmp_path / "distorted_images" / "i01_01_1.bmp")  # case differs from the label file, as in releases
    img(tmp_path / "distorted_images" / "i01_01_2.bmp")
    img(tmp_path / "distorted_images" / "I02_08_3.BMP")
    rows = load_dataset("tid2013", tmp_path)
    check_rows(rows, 3)
    assert rows[0].id == "i01_01_1" and rows[0].mos == pytest.approx(1 + 4 * 5.51429 / 9)
    assert rows[0].mos_std == pytest.approx(0.13956 * 4 / 9)
    assert rows[2].source_id == "i02" and rows[2].extra["distortion"] == "gaussian_blur"


# -- AGIQA-3K -----------------------------------------------------------------------------------


def test_agiqa3k_data_csv(tmp_path: Path) -> None:
    real = LABELS / "AGIQA-3K_data.csv"
    if real.is_file():
        head = "".join(real.read_text(encoding="utf-8").splitlines(keepends=True)[:4])
    else:
        head = (
            "name,prompt,adj1,adj2,style,mos_quality,std_quality,mos_align,std_align\n"
            "AttnGAN_normal_000.jpg,statue of a man,,,,0.965602553,0.223270101,0.40889324,0.615607722\n"
        )
    write(tmp_path / "data.csv", head)
    names = [ln.split(",")[0] for ln in head.splitlines()[1:]]
    for n in names:
        img(tmp_path / "AGIQA-3K" / n)
    rows = load_dataset("agiqa3k", tmp_path)
    check_rows(rows, len(names))
    assert (
        rows[0].mos == pytest.approx(1 + 4 * 0.965602553 / 5) and rows[0].extra["prompt"] == "statue of a man"
    )
    assert rows[0].extra["generator"] == "AttnGAN"


# -- CSIQ -----------------------------------------------------------------------------------------


def test_csiq_dmos_xlsx_inverted(tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "all_by_image"
    ws.append(["CSIQ DMOS values"])
    ws.append([])
    ws.append(["image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"])
    ws.append([1600, 1, "noise", 1, 0.01, 0.061989])
    ws.append([1600, 3, "jpeg 2000", 4, 0.02, 0.5])
    ws.append(["aerial_city", 5, "blur", 2, 0.03, 0.9])
    wb.save(tmp_path / "csiq.DMOS.xlsx")
    img(tmp_path / "dst_imgs" / "awgn" / "1600.AWGN.1.png")
    img(tmp_path / "dst_imgs" / "jpeg2000" / "1600.jpeg2000.4.png")
    img(tmp_path / "dst_imgs" / "blur" / "aerial_city.BLUR.2.png")
    rows = load_dataset("csiq", tmp_path)
    check_rows(rows, 3)
    assert rows[0].id == "1600.AWGN.1" and rows[0].mos == pytest.approx(1 + 4 * (1 - 0.061989))
    assert rows[2].mos < rows[0].mos  # lower DMOS is better -> higher MOS
    assert rows[1].source_id == "1600" and rows[2].extra["distortion"] == "blur"


def test_csiq_unified(tmp_path: Path) -> None:
    csvp = write(
        tmp_path / "CSIQ.csv",
        "dis_img_path,dis_type,ref_img_path,score\n"
        "CSIQ/dst_imgs/AWGN/1600.AWGN.1.png,AWGN,CSIQ/src_imgs/1600.png,0.061989\n",
    )
    img(tmp_path / "CSIQ" / "dst_imgs" / "AWGN" / "1600.AWGN.1.png")
    rows = load_dataset("csiq", csvp)
    assert rows[0].mos == pytest.approx(1 + 4 * (1 - 0.061989)) and rows[0].source_id == "1600"


# -- UHD-IQA ---------------------------------------------------------------------------------------


def test_uhdiqa_metadata_and_unified(tmp_path: Path) -> None:
    write(
        tmp_path / "uhd-iqa-metadata.csv", "image_name,quality_mos,set\n1.jpg,0.76,training\n7.jpg,0.5,test\n"
    )
    img(tmp_path / "training" / "1.jpg")
    img(tmp_path / "test" / "7.jpg")
    rows = load_dataset("uhdiqa", tmp_path)
    check_rows(rows, 2)
    assert [r.split for r in rows] == ["train", "test"] and rows[0].mos == pytest.approx(1 + 4 * 0.76)
    head = "dis_img_path,dis_type,score,orig_width,orig_height\nUHD-IQA/training/1.jpg,Authentic,0.76,5515,3375\n"
    csvp = write(tmp_path / "u" / "UHD-IQA.csv", head)
    img(tmp_path / "u" / "UHD-IQA" / "training" / "1.jpg", w=30, h=20)
    u = load_dataset("uhdiqa", csvp)
    assert u[0].split == "train" and (u[0].width, u[0].height) == (30, 20)


# -- benchmark manifest ---------------------------------------------------------------------------


def test_bench_manifest(tmp_path: Path) -> None:
    from qprobe.manifest import DefectLabel, ManifestRow, write_manifest
    from qprobe.types import Box

    img(tmp_path / "images" / "a.png", 40, 30)
    img(tmp_path / "images" / "b.png", 40, 30)
    rows = [
        ManifestRow(
            "a",
            "images/a.png",
            "qprobe-bench",
            "test",
            40,
            30,
            mos=2.5,
            source_id="p1",
            defects=[DefectLabel(Box(1, 1, 10, 10), "noise", 3)],
            extra={"kind": "degraded"},
        ),
        ManifestRow(
            "b",
            "images/b.png",
            "qprobe-bench",
            "test",
            40,
            30,
            mos=4.8,
            source_id="p1",
            extra={"kind": "clean"},
        ),
    ]
    write_manifest(tmp_path / "manifest.jsonl", rows)
    got = load_dataset("qprobe-bench", tmp_path)
    assert (
        [r.id for r in got] == ["a", "b"]
        and Path(got[0].path).is_absolute()
        and got[0].defects[0].type == "noise"
    )
    assert got[1].extra["kind"] == "clean"


# -- errors ------------------------------------------------------------------------------------------


def test_missing_layout_errors_are_actionable(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="dmos.csv"):
        load_dataset("kadid10k", tmp_path)
    with pytest.raises(ManifestError, match="AllMOS_release.mat"):
        load_dataset("clive", tmp_path)
    write(tmp_path / "dmos.csv", "dist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,oops,0.4\n")
    img(tmp_path / "images" / "I01_01_01.png")
    with pytest.raises(ManifestError, match="expected a number"):
        load_dataset("kadid10k", tmp_path)


# -- splits ---------------------------------------------------------------------------------------------


@pytest.fixture
def kadid_root(tmp_path: Path) -> Path:
    lines = ["dist_img,ref_img,dmos,var"]
    for ref in range(1, 11):
        for d in (1, 2, 3):
            name = f"I{ref:02d}_{d:02d}_01.png"
            lines.append(f"{name},I{ref:02d}.png,{1 + (ref * d) % 4}.5,0.3")
            img(tmp_path / "images" / name, 8, 8)
    write(tmp_path / "dmos.csv", "\n".join(lines) + "\n")
    return tmp_path


def test_splits_grouped_deterministic_and_files(
    kadid_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    rows = load_dataset("kadid10k", kadid_root)
    fr = {"train": 0.6, "val": 0.2, "test": 0.2}
    a, b = make_splits(rows, fr, seed=1), make_splits(rows, fr, seed=1)
    assert a == b and make_splits(rows, fr, seed=2) != a
    assert sum(len(v) for v in a.values()) == 30 and len(a["train"]) == 18
    src = {r.id: r.source_id for r in rows}
    owners = {}
    for name, ids in a.items():
        for i in ids:
            assert owners.setdefault(src[i], name) == name  # no reference crosses splits
    out = tmp_path_factory.mktemp("splits")
    write_splits(out, a, {"dataset": "kadid10k", "seed": 1})
    assert read_splits(out) == a
    test_rows = load_dataset("kadid10k", kadid_root, split="test", splits=out)
    assert sorted(r.id for r in test_rows) == a["test"] and {r.split for r in test_rows} == {"test"}
    by_file = load_dataset("kadid10k", kadid_root, split=str(out / "val.txt"))
    assert sorted(r.id for r in by_file) == a["val"]


def test_duplicates_across_splits_refused(kadid_root: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path_factory.mktemp("bad")
    write(out / "train.txt", "I01_01_01\nI02_01_01\n")
    write(out / "test.txt", "I01_01_01\n")
    with pytest.raises(ManifestError, match="listed in both"):
        load_dataset("kadid10k", kadid_root, splits=out)
    write(out / "test.txt", "I01_02_01\n")  # same reference I01 as a train image
    with pytest.raises(ManifestError, match="source image 'I01'"):
        load_dataset("kadid10k", kadid_root, splits=out)
    with pytest.raises(ManifestError, match="listed twice"):
        write(out / "test.txt", "I03_01_01\nI03_01_01\n")
        load_dataset("kadid10k", kadid_root, splits=out)
    with pytest.raises(ManifestError, match="available splits"):
        load_dataset("kadid10k", kadid_root, split="nope")


def test_real_unified_label_files_parse_headers() -> None:
    """The unified CSVs in ../shared/data/labels have the columns the converters expect."""
    if not LABELS.is_dir():
        pytest.skip("shared labels not available")
    from qprobe.eval.datasets._common import is_unified_csv

    for f in (
        "KonIQ-10k.csv",
        "SPAQ.csv",
        "KADID-10k.csv",
        "PIPAL.csv",
        "TID2013.csv",
        "CSIQ.csv",
        "LIVE_Challenge.csv",
        "UHD-IQA.csv",
    ):
        assert is_unified_csv(LABELS / f), f
    with open(LABELS / "koniq10k_distributions_sets_official.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert {"image_name", "c1", "c5", "MOS", "SD", "set"} <= set(header)


def test_byte_identical_files_stay_in_one_split(kadid_root: Path) -> None:
    import shutil

    # the same photo shipped twice under different names and references
    shutil.copy(kadid_root / "images" / "I01_01_01.png", kadid_root / "images" / "I09_03_01.png")
    rows = load_dataset("kadid10k", kadid_root)
    fr = {"train": 0.5, "test": 0.5}
    for seed in range(6):
        parts = make_splits(rows, fr, seed=seed, dedupe_content=True)
        owner = {i: k for k, ids in parts.items() for i in ids}
        assert owner["I01_01_01"] == owner["I09_03_01"]
        assert owner["I01_02_01"] == owner["I09_01_01"]  # whole reference groups are merged
        assert 0 < len(parts["test"]) < len(rows)  # the other groups still spread
    split_apart = any(
        {i: k for k, ids in make_splits(rows, fr, seed=s).items() for i in ids}["I01_01_01"]
        != {i: k for k, ids in make_splits(rows, fr, seed=s).items() for i in ids}["I09_03_01"]
        for s in range(6)
    )
    assert split_apart  # without content dedupe the copies can land apart
