"""Tests of keras_lmiqa.datasets.splits."""

import json

import numpy as np
import pytest

from keras_lmiqa.datasets.records import make_dataset
from keras_lmiqa.datasets.splits import Split, protocol_seeds, split_dataset
from keras_lmiqa.errors import ConfigError, DatasetError


def synthetic(n_refs=25, n_dist=6, shuffle_seed=None):
    entries = [
        (f"/fake/dist/I{r:02d}_{d:02d}.png", float((r * 7 + d * 3) % 11), f"I{r:02d}", None)
        for r in range(n_refs)
        for d in range(n_dist)
    ]
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(entries))
        entries = [entries[i] for i in order]
    return make_dataset("synth", "/fake", entries, higher_better=True, synthetic=True)


def authentic(n=100):
    entries = [(f"/fake/img{i:04d}.jpg", float(i % 17) + 1.0, f"img{i:04d}.jpg", None) for i in range(n)]
    return make_dataset("auth", "/fake", entries, higher_better=True, synthetic=False)


def random_dataset(rng):
    n_groups = int(rng.integers(3, 40))
    entries = []
    for g in range(n_groups):
        for k in range(int(rng.integers(1, 8))):
            group = f"grp-{rng.integers(0, 10**6)}-{g}"
            entries.append((f"/fake/g{g}/{k}.png", float(rng.uniform(0, 100)), group, None))
    rng.shuffle(entries)
    return make_dataset("rand", "/fake", entries, higher_better=bool(rng.integers(0, 2)), synthetic=True)


def assert_valid(split, dataset):
    parts = [set(split.train), set(split.val), set(split.test)]
    assert set().union(*parts) == set(range(len(dataset)))
    assert sum(len(p) for p in parts) == len(dataset)
    group_sets = [{dataset[i].group for i in p} for p in parts]
    for a in range(3):
        for b in range(a + 1, 3):
            assert not group_sets[a] & group_sets[b]
    for part, groups in zip(("train", "val", "test"), group_sets):
        assert set(split.groups(part)) == groups
        assert list(split.indices(part)) == sorted(split.indices(part))


@pytest.mark.parametrize("seed", range(6))
def test_synthetic_no_group_in_two_parts(seed):
    ds = synthetic()
    split = split_dataset(ds, seed=seed)
    assert_valid(split, ds)
    assert not split.official and split.seed == seed
    # 25 refs: 5 test, then round(0.1 * 20) = 2 val, 18 train.
    assert (len(split.test_groups), len(split.val_groups), len(split.train_groups)) == (5, 2, 18)
    assert split.sizes() == {"train": 18 * 6, "val": 2 * 6, "test": 5 * 6}


def test_random_datasets_never_share_groups():
    rng = np.random.default_rng(123)
    for _ in range(40):
        ds = random_dataset(rng)
        for seed in (0, 1, 2):
            split = split_dataset(ds, seed=seed)
            assert_valid(split, ds)
            assert split.train and split.val and split.test  # >= 3 groups: no part empty


def test_authentic_splits_by_image_and_honours_fractions():
    ds = authentic(100)
    split = split_dataset(ds, seed=3, test_fraction=0.2, val_fraction=0.1)
    assert_valid(split, ds)
    assert (len(split.train), len(split.val), len(split.test)) == (72, 8, 20)
    split = split_dataset(ds, seed=3, test_fraction=0.3, val_fraction=0.0)
    assert (len(split.train), len(split.val), len(split.test)) == (70, 0, 30)


def test_deterministic_and_seed_dependent():
    ds = synthetic()
    a, b = split_dataset(ds, seed=5), split_dataset(ds, seed=5)
    assert a == b
    tests = {split_dataset(ds, seed=s).test_groups for s in range(10)}
    assert len(tests) > 1


def test_depends_only_on_the_set_of_groups():
    a = split_dataset(synthetic(), seed=9)
    b = split_dataset(synthetic(shuffle_seed=1), seed=9)
    assert (a.train_groups, a.val_groups, a.test_groups) == (b.train_groups, b.val_groups, b.test_groups)


def test_three_groups_get_one_each_and_small_fractions_round_up():
    ds = synthetic(n_refs=3, n_dist=2)
    split = split_dataset(ds, seed=0, test_fraction=0.01, val_fraction=0.01)
    assert (len(split.train_groups), len(split.val_groups), len(split.test_groups)) == (1, 1, 1)
    # Large fractions are capped so train keeps a group.
    split = split_dataset(synthetic(n_refs=4), seed=0, test_fraction=0.9, val_fraction=0.05)
    assert (len(split.train_groups), len(split.val_groups), len(split.test_groups)) == (1, 1, 2)


def test_official_split_is_used():
    entries = []
    for i in range(30):
        part = "test" if i < 6 else ("val" if i < 9 else "train")
        entries.append((f"/fake/{i}.jpg", float(i), f"{i}.jpg", part))
    ds = make_dataset("koniq", "/fake", entries, higher_better=True, synthetic=False)
    split = split_dataset(ds, seed=4)
    assert split.official
    assert split.test == tuple(range(6)) and split.val == (6, 7, 8) and split.train == tuple(range(9, 30))
    assert split_dataset(ds, seed=99).test == split.test  # seed does not matter
    random_split = split_dataset(ds, seed=4, use_official=False)
    assert not random_split.official
    assert_valid(random_split, ds)


def test_official_split_without_val_carves_val_from_train_by_group():
    entries = []
    for ref in range(12):
        part = "test" if ref < 3 else "train"
        for d in range(4):
            entries.append((f"/fake/r{ref}_{d}.png", float(ref + d), f"r{ref}", part))
    ds = make_dataset("off", "/fake", entries, higher_better=False, synthetic=True)
    split = split_dataset(ds, seed=1, val_fraction=0.25)
    assert split.official
    assert_valid(split, ds)
    assert set(split.test_groups) == {"r0", "r1", "r2"}
    assert len(split.val_groups) == 2 and len(split.train_groups) == 7  # round(0.25 * 9) = 2
    assert all(ds[i].official_split == "train" for i in split.val)
    assert split_dataset(ds, seed=1, val_fraction=0.25) == split
    no_val = split_dataset(ds, seed=1, val_fraction=0.0)
    assert no_val.val == () and len(no_val.train_groups) == 9


def test_malformed_official_splits():
    base = [("/fake/a.png", 1.0, "a", "train"), ("/fake/b.png", 2.0, "b", "test")]
    span = make_dataset("x", "/fake", base + [("/fake/a2.png", 3.0, "a", "test")], True, True)
    with pytest.raises(DatasetError, match="both"):
        split_dataset(span, val_fraction=0.0)
    partial = make_dataset("x", "/fake", base + [("/fake/c.png", 3.0, "c", None)], True, True)
    with pytest.raises(DatasetError, match="use_official=False"):
        split_dataset(partial, val_fraction=0.0)
    assert split_dataset(partial, use_official=False, val_fraction=0.0).test  # random split still works
    unknown = make_dataset("x", "/fake", base + [("/fake/c.png", 3.0, "c", "holdout")], True, True)
    with pytest.raises(DatasetError, match="holdout"):
        split_dataset(unknown, val_fraction=0.0)
    no_test = make_dataset("x", "/fake", [("/fake/a.png", 1.0, "a", "train"), ("/fake/b.png", 2.0, "b", "val")],
                           True, True)
    with pytest.raises(DatasetError, match="no test part"):
        split_dataset(no_test)
    with pytest.raises(ConfigError, match="too few"):
        split_dataset(make_dataset("x", "/fake", base, True, True), val_fraction=0.1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"test_fraction": -0.1}, "test_fraction"),
        ({"val_fraction": 1.5}, "val_fraction"),
        ({"test_fraction": 0.6, "val_fraction": 0.4}, "< 1"),
        ({"test_fraction": "0.2"}, "test_fraction"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        split_dataset(synthetic(), **kwargs)


def test_too_few_groups():
    two = synthetic(n_refs=2)
    with pytest.raises(ConfigError, match="2 group"):
        split_dataset(two, seed=0)
    split = split_dataset(two, seed=0, val_fraction=0.0)  # train + test only
    assert len(split.train_groups) == 1 and len(split.test_groups) == 1 and split.val == ()
    with pytest.raises(ConfigError, match="1 group"):
        split_dataset(synthetic(n_refs=1), val_fraction=0.0)
    assert split_dataset(synthetic(n_refs=1), test_fraction=0.0, val_fraction=0.0).train


def test_records_to_dict_and_round_trip():
    ds = synthetic(n_refs=10, n_dist=3)
    split = split_dataset(ds, seed=2)
    test_records = split.records(ds, "test")
    assert [r.path for r in test_records] == [ds[i].path for i in split.test]
    assert {r.group for r in test_records} == set(split.test_groups)
    data = split.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["test"]["indices"] == list(split.test) and data["test"]["groups"] == list(split.test_groups)
    assert data["seed"] == 2 and data["official"] is False
    assert Split.from_dict(data) == split
    with pytest.raises(ConfigError, match="unknown split part"):
        split.records(ds, "holdout")
    with pytest.raises(ConfigError, match="does not match"):
        split.records(synthetic(n_refs=2, n_dist=1), "train")
    with pytest.raises(ConfigError, match="malformed"):
        Split.from_dict({"seed": 0})


def test_protocol_seeds():
    assert protocol_seeds() == list(range(10))
    assert protocol_seeds(3, base_seed=100) == [100, 101, 102]
    with pytest.raises(ConfigError):
        protocol_seeds(0)
    with pytest.raises(ConfigError):
        protocol_seeds(5, base_seed=-2)
    splits = [split_dataset(synthetic(), seed=s) for s in protocol_seeds()]
    assert len({s.test_groups for s in splits}) == 10
