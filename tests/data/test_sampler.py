from collections import Counter

import pytest

from sed_lightning.data.sampler import MixedKindBatchSampler

GROUPS = {
    "strong": list(range(0, 10)),
    "weak": list(range(10, 40)),
    "unlabeled": list(range(40, 45)),
}


def kind(i):
    return "strong" if i < 10 else "weak" if i < 40 else "unlabeled"


def test_every_batch_has_the_configured_mix():
    s = MixedKindBatchSampler(GROUPS, {"strong": 2, "weak": 3, "unlabeled": 1})
    batches = list(s)
    assert len(batches) == len(s) == 10  # one pass over weak: 30 / 3
    for b in batches:
        assert Counter(map(kind, b)) == {"strong": 2, "weak": 3, "unlabeled": 1}
    weak_seen = [i for b in batches for i in b if kind(i) == "weak"]
    assert sorted(weak_seen) == GROUPS["weak"]  # the largest kind is seen exactly once


def test_zero_size_leaves_a_kind_out():
    s = MixedKindBatchSampler(GROUPS, {"strong": 2, "weak": 2, "unlabeled": 0})
    assert all(kind(i) != "unlabeled" for b in s for i in b)


def test_epochs_reshuffle_deterministically():
    a = MixedKindBatchSampler(GROUPS, {"strong": 2, "weak": 2}, seed=3)
    b = MixedKindBatchSampler(GROUPS, {"strong": 2, "weak": 2}, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first


def test_ranks_get_disjoint_shares():
    shards = [
        list(MixedKindBatchSampler(GROUPS, {"weak": 3}, num_replicas=2, rank=r)) for r in range(2)
    ]
    seen = [{i for b in shard for i in b} for shard in shards]
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(GROUPS["weak"])


def test_missing_kind_is_reported():
    with pytest.raises(ValueError, match="unlabeled"):
        MixedKindBatchSampler({"strong": [0, 1]}, {"strong": 1, "unlabeled": 1})
