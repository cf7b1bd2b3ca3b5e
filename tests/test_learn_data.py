"""2AFC and JND data for learning a metric: the BAPPS JND, NIGHTS and triplet-manifest readers, and the
synthetic sets judged by a planted observer (percept.eval.datasets.synthetic)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from percept import RandomWeightsWarning
from percept.errors import InputError, SpecError
from percept.eval.datasets import (
    DatabaseError,
    JNDDatabase,
    TwoAFCDatabase,
    load_database,
    read_bapps_jnd,
    read_nights,
    read_triplets,
)
from percept.eval.datasets.synthetic import (
    DISTORTIONS,
    LAYOUTS,
    PlantedObserver,
    distort,
    make_2afc,
    make_jnd,
    simulate_judges,
    triplets,
)
from percept.eval.stats import two_afc_agreement

READER = {"bapps": "bapps", "nights": "nights", "csv": "triplets"}


@pytest.fixture(scope="module")
def observer() -> PlantedObserver:
    """A small, fast network (SqueezeNet 1.1, random weights) with planted channels."""
    return PlantedObserver("squeezenet1_1:relu1,fire3,fire5", seed=0)


def _png(path: Path, shade: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade, shade, shade)).save(path)


# -- the generator -------------------------------------------------------------------------------------


def test_make_2afc_reads_back_in_each_layout_with_the_same_triplets(tmp_path, observer):
    """Each layout reads back with its reader; one seed gives the same images and judgements in all."""
    tables = []
    for layout in LAYOUTS:
        path = make_2afc(tmp_path / layout, observer, layout=layout, n_train=6, n_val=4, size=32, judges=5)
        db = load_database(READER[layout], path)
        assert isinstance(db, TwoAFCDatabase) and len(db) == 10
        assert db.table["subset"].str.split("/").str[0].value_counts().to_dict() == {"train": 6, "val": 4}
        judge = db.table["judge"].to_numpy()
        assert ((judge >= 0) & (judge <= 1)).all()
        np.testing.assert_allclose(judge * 5, np.round(judge * 5), atol=1e-9)  # fractions of 5 people
        record = {"bapps": "2afc/observer.json", "nights": "nights/observer.json", "csv": "observer.json"}[layout]
        assert json.loads((tmp_path / layout / record).read_text())["observer"]["weights"] == "random:0"
        tables.append(db.table)
    assert sorted(tables[0]["subset"].unique()) == ["train/synthetic", "val/synthetic"]
    assert sorted(tables[1]["subset"].unique()) == ["train/nights", "val/nights"]
    assert sorted(tables[2]["subset"].unique()) == ["train/triplets", "val/triplets"]
    for table in tables[1:]:
        np.testing.assert_array_equal(table["judge"].to_numpy(), tables[0]["judge"].to_numpy())
        for key in ("ref", "p0", "p1"):
            for a, b in zip(table[key], tables[0][key], strict=True):
                assert Path(a).read_bytes() == Path(b).read_bytes()


def test_generator_is_deterministic(tmp_path, observer):
    first = make_2afc(tmp_path / "a", observer, n_train=3, n_val=1, size=32, seed=3)
    again = make_2afc(tmp_path / "b", observer, n_train=3, n_val=1, size=32, seed=3)
    other = make_2afc(tmp_path / "c", observer, n_train=3, n_val=1, size=32, seed=4)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file() and p.suffix in (".png", ".npy"))
    assert len(files) == 4 * 4
    assert all((first / f).read_bytes() == (again / f).read_bytes() for f in files)
    assert any((first / f).read_bytes() != (other / f).read_bytes() for f in files)


def test_make_jnd_reads_back(tmp_path, observer):
    path = make_jnd(tmp_path, observer, n=12, size=32, judges=3)
    db = load_database("bapps-jnd", path)
    assert isinstance(db, JNDDatabase) and len(db) == 12
    assert db.table.columns.tolist() == ["p0", "p1", "same", "subset"]
    assert set(db.table["subset"]) == {"val/synthetic"}
    same = db.table["same"].to_numpy()
    np.testing.assert_allclose(same * 3, np.round(same * 3), atol=1e-9)
    assert 0 < same.mean() < 1
    assert json.loads((path / "jnd" / "observer.json").read_text())["kind"] == "jnd"


def test_generator_refuses_bad_arguments(tmp_path, observer):
    with pytest.raises(InputError, match="Did you mean 'nights'"):
        make_2afc(tmp_path, observer, layout="night")
    with pytest.raises(InputError, match="judges must be an integer >= 1"):
        make_2afc(tmp_path, observer, judges=0)
    with pytest.raises(InputError, match="temperature must be a finite number > 0"):
        make_2afc(tmp_path, observer, n_train=2, n_val=0, size=32, temperature=-1.0)
    with pytest.raises(InputError, match="too small for backbone"):
        make_2afc(tmp_path, PlantedObserver("squeezenet1_1", seed=0), size=8)


def test_distortions_change_images_by_the_rms_asked():
    x = 0.25 + 0.5 * torch.rand(len(DISTORTIONS), 3, 32, 32)
    kinds = torch.arange(len(DISTORTIONS))
    y = distort(x, kinds, torch.full((len(DISTORTIONS),), 0.04), torch.Generator().manual_seed(0))
    rms = (y - x).pow(2).mean(dim=(1, 2, 3)).sqrt()
    unbounded = [i for i, k in enumerate(DISTORTIONS) if k not in ("blur", "blocks")]
    torch.testing.assert_close(rms[unbounded], torch.full((len(unbounded),), 0.04), atol=2e-3, rtol=0)
    assert (rms > 0).all()
    assert torch.equal(distort(x, kinds, torch.zeros(len(DISTORTIONS)), torch.Generator()), x)


# -- the observer --------------------------------------------------------------------------------------


def test_observer_plants_a_seeded_fraction_of_channels(observer):
    for tap in observer.taps:
        channels = observer.backbone.tap_info(tap).channels
        planted, weights = observer.planted[tap], observer.channel_weights[tap]
        assert len(planted) == max(1, round(0.1 * channels)) and weights.shape == (channels,)
        assert ((weights[planted] >= 0.5) & (weights[planted] <= 1.5)).all()
        assert int((weights != 0).sum()) == len(planted)
    twin = PlantedObserver(observer.backbone, observer.taps, seed=0)
    other = PlantedObserver(observer.backbone, observer.taps, seed=1)
    assert all(torch.equal(twin.channel_weights[t], observer.channel_weights[t]) for t in observer.taps)
    assert any(not torch.equal(other.planted[t], observer.planted[t]) for t in observer.taps)


def test_observer_distance_is_its_weighted_channel_errors(observer):
    x, y = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
    d = observer.distance(x, y)
    errors = observer.channel_errors(x, y)
    assert d.shape == (3,) and (d > 0).all()
    torch.testing.assert_close(d, sum(e @ observer.channel_weights[t] for t, e in errors.items()))
    assert observer.distance(x, x).abs().max() == 0
    # images in (-1, 1) are mapped to the network's range: the same distances
    lpips_range = PlantedObserver(observer.backbone, observer.taps, seed=0, input_range=(-1, 1))
    torch.testing.assert_close(lpips_range.distance(2 * x - 1, 2 * y - 1), d)


def test_observer_from_a_name_is_seeded_and_checked():
    a = PlantedObserver("squeezenet1_1:relu1", seed=5)
    b = PlantedObserver("squeezenet1_1:relu1", seed=5)
    assert a.taps == ["relu1"]
    x, y = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(a.distance(x, y), b.distance(x, y))
    with pytest.raises(InputError, match="fraction"):
        PlantedObserver(a.backbone, fraction=0)
    with pytest.raises(SpecError, match="backbone name with optional taps"):
        PlantedObserver("squeezenet1_1/unit/l2")
    with pytest.raises(InputError, match="Backbone or a backbone name"):
        PlantedObserver(42)  # type: ignore[arg-type]


def test_planted_channels_decide_the_judgements():
    """The observer's own weighting of its planted channels reaches the judges' agreement; every channel
    weighed alike (an uncalibrated unit/l2 metric) falls clearly short, and pixels further still."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        observer = PlantedObserver("alexnet", seed=0)
    generator = torch.Generator().manual_seed(0)
    ref, p0, p1 = triplets(200, 40, generator)
    with torch.no_grad():
        e0, e1 = observer.channel_errors(ref, p0), observer.channel_errors(ref, p1)
    d0 = sum(e0[t].double() @ observer.channel_weights[t].double() for t in e0)
    d1 = sum(e1[t].double() @ observer.channel_weights[t].double() for t in e1)
    judge, _ = simulate_judges(d0, d1, judges=5, generator=generator)
    human = float((judge**2 + (1 - judge) ** 2).mean())
    planted = two_afc_agreement(d0, d1, judge)
    uniform = two_afc_agreement(sum(e.sum(1) for e in e0.values()), sum(e.sum(1) for e in e1.values()), judge)
    pixels = two_afc_agreement((ref - p0).pow(2).mean((1, 2, 3)), (ref - p1).pow(2).mean((1, 2, 3)), judge)
    unanimous = float(((judge == 0) | (judge == 1)).double().mean())
    assert planted > 0.8 and abs(planted - human) < 0.03
    assert planted - uniform > 0.08, (planted, uniform)
    assert uniform > pixels
    assert 0.3 < unanimous < 0.9, "informative, but not every judgement unanimous"


# -- the readers ---------------------------------------------------------------------------------------


def _jnd_layout(root: Path, n: int = 3) -> Path:
    folder = root / "jnd" / "val" / "cnn"
    for i in range(n):
        _png(folder / "p0" / f"{i:06d}.png", 10 * i)
        _png(folder / "p1" / f"{i:06d}.png", 10 * i + 5)
        (folder / "same").mkdir(parents=True, exist_ok=True)
        np.save(folder / "same" / f"{i:06d}.npy", np.array([i / 3], dtype=np.float32))
    return root


def test_bapps_jnd_reader(tmp_path):
    _jnd_layout(tmp_path)
    db = read_bapps_jnd(tmp_path)
    assert db.name == "bapps-jnd" and len(db) == 3
    np.testing.assert_allclose(db.table["same"], [0, 1 / 3, 2 / 3], atol=1e-6)
    assert set(db.table["subset"]) == {"val/cnn"}
    assert len(read_bapps_jnd(tmp_path / "jnd", subsets=("val/cnn",))) == 3
    assert len(load_database("jnd", tmp_path)) == 3


@pytest.mark.parametrize(
    "fault, match",
    [
        ("no jnd folder", r"jnd' does not exist"),
        ("missing same", r"same/000001.npy' does not exist \(the 'same' value of"),
        ("same above 1", r"holds 1.5, expected a fraction in \[0, 1\]"),
        ("missing p1", r"p1/000002.png' does not exist"),
        ("corrupt same", r"cannot read .*same/000000.npy"),
    ],
)
def test_bapps_jnd_reader_faults(tmp_path, fault, match):
    _jnd_layout(tmp_path)
    folder = tmp_path / "jnd" / "val" / "cnn"
    root = tmp_path
    if fault == "no jnd folder":
        root = tmp_path / "elsewhere"
    elif fault == "missing same":
        (folder / "same" / "000001.npy").unlink()
    elif fault == "same above 1":
        np.save(folder / "same" / "000001.npy", np.array([1.5]))
    elif fault == "missing p1":
        (folder / "p1" / "000002.png").unlink()
    else:
        (folder / "same" / "000000.npy").write_bytes(b"not numpy")
    with pytest.raises(DatabaseError, match=match) as info:
        read_bapps_jnd(root)
    assert "BAPPS JND layout" in str(info.value)


NIGHTS_HEADER = "id,left_vote,right_vote,votes,ref_path,left_path,right_path,split,is_imagenet"


def _nights_layout(root: Path, rows: list[str] | None = None) -> Path:
    base = root / "nights"
    for i in range(4):
        _png(base / "ref" / "000" / f"{i:03d}.png")
        _png(base / "distort" / "000" / f"{i:03d}_0.png", 80)
        _png(base / "distort" / "000" / f"{i:03d}_1.png", 120)
    splits = [("train", "False", 6), ("val", "False", 7), ("test", "True", 6), ("test", "False", 5)]
    if rows is None:
        rows = [
            f"{i},{1 - 0.25 * i},{0.25 * i},{votes},ref/000/{i:03d}.png,distort/000/{i:03d}_0.png,"
            f"distort/000/{i:03d}_1.png,{split},{flag}"
            for i, (split, flag, votes) in enumerate(splits)
        ]
    (base / "data.csv").write_text("\n".join([NIGHTS_HEADER, *rows]) + "\n")
    return base


def test_nights_reader(tmp_path):
    _nights_layout(tmp_path)
    db = read_nights(tmp_path)  # the folder holding nights/ works, as does nights/ itself
    assert db.name == "nights" and len(db) == 4
    assert db.table["subset"].tolist() == ["train/nights", "val/nights", "test/imagenet", "test/no_imagenet"]
    np.testing.assert_allclose(db.table["judge"], [0, 0.25, 0.5, 0.75])
    assert db.table["p0"].iloc[1].endswith("distort/000/001_0.png")
    assert db.table["p1"].iloc[1].endswith("distort/000/001_1.png")
    kept = load_database("nights", tmp_path / "nights", min_votes=6)
    assert kept.table["subset"].tolist() == ["train/nights", "val/nights", "test/imagenet"]


def test_nights_votes_as_counts(tmp_path):
    rows = ["0,2,6,8,ref/000/000.png,distort/000/000_0.png,distort/000/000_1.png,test,"]
    db = read_nights(_nights_layout(tmp_path, rows))
    assert db.table["judge"].tolist() == [0.75] and db.table["subset"].tolist() == ["test/nights"]


@pytest.mark.parametrize(
    "row, match",
    [
        ("0,0.5,x,8,ref/000/000.png,distort/000/000_0.png,distort/000/000_1.png,val,False", "expected a number"),
        ("0,0,0,8,ref/000/000.png,distort/000/000_0.png,distort/000/000_1.png,val,False", "positive sum"),
        ("0,1,0,8,ref/000/009.png,distort/000/000_0.png,distort/000/000_1.png,val,False", "009.png' .* not exist"),
        ("0,1,0,8,ref/000/000.png,distort/000/000_0.png,val,False", "expected 9 fields"),
    ],
)
def test_nights_reader_faults(tmp_path, row, match):
    base = _nights_layout(tmp_path, [row])
    with pytest.raises(DatabaseError, match=match) as info:
        read_nights(base)
    assert "NIGHTS layout" in str(info.value) and "data.csv" in str(info.value)


def test_nights_reader_needs_its_columns(tmp_path):
    base = _nights_layout(tmp_path)
    (base / "data.csv").write_text("id,ref_path,left_path,right_path\n0,a,b,c\n")
    with pytest.raises(DatabaseError, match=r"lacks columns \['left_vote', 'right_vote', 'split'\]"):
        read_nights(base)
    (base / "data.csv").unlink()
    with pytest.raises(DatabaseError, match=r"data.csv' does not exist.*NIGHTS layout"):
        read_nights(base)


def _triplet_layout(root: Path, lines: list[str]) -> Path:
    for name in ("r", "a", "b"):
        _png(root / "img" / f"{name}.png")
    path = root / "judged.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_triplet_manifest_reader(tmp_path):
    path = _triplet_layout(tmp_path, ["ref,p0,p1,judge,split", "img/r.png,img/a.png,img/b.png,0.2,train",
                                      "img/r.png,img/b.png,img/a.png,1,val/hard"])  # fmt: skip
    db = load_database("triplets", path)
    assert db.name == "judged" and db.table["subset"].tolist() == ["train/judged", "val/hard"]
    assert db.table["judge"].tolist() == [0.2, 1.0]
    plain = _triplet_layout(tmp_path / "plain", ["REF,P0,P1,Judge", "r.png,a.png,b.png,0.5"])
    db = read_triplets(plain, root=tmp_path / "plain" / "img", split="test", name="mine")
    assert db.table["subset"].tolist() == ["test/mine"] and db.table["ref"].iloc[0].endswith("img/r.png")


@pytest.mark.parametrize(
    "lines, match",
    [
        (["ref,p0,p1", "img/r.png,img/a.png,img/b.png"], r"header lacks columns \['judge'\]"),
        (["ref,p0,p1,judge", "img/r.png,img/a.png,img/b.png,1.5"], r"judge '1.5' is not a fraction"),
        (["ref,p0,p1,judge", "img/r.png,img/a.png,img/b.png,nan"], "not a finite number"),
        (["ref,p0,p1,judge", "img/r.png,img/a.png,img/c.png,0"], r"img/c.png' \(named in .* line 2\) does not"),
        (["ref,p0,p1,judge", "img/r.png,,img/b.png,0"], "empty p0"),
        (["ref,p0,p1,judge"], "has a header but no data rows"),
    ],
)
def test_triplet_manifest_faults(tmp_path, lines, match):
    path = _triplet_layout(tmp_path, lines)
    with pytest.raises(DatabaseError, match=match) as info:
        read_triplets(path)
    assert "judged.csv" in str(info.value) and "CSV triplet manifest" in str(info.value)


def test_unknown_database_names_suggest_the_new_ones(tmp_path):
    with pytest.raises(DatabaseError, match="Did you mean 'nights'"):
        load_database("nigths", tmp_path)
    with pytest.raises(DatabaseError, match="Did you mean 'triplets'"):
        load_database("triplet5", tmp_path)
    with pytest.raises(DatabaseError, match="Did you mean 'bapps-jnd'"):
        load_database("bapps-jdn", tmp_path)
