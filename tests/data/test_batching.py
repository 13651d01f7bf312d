import random

from convtune.data.batching import collate, eval_batches, train_batches


def test_train_batches_cover_every_index_once():
    lengths = [random.Random(i).randint(1, 60) for i in range(1000)]
    batches = train_batches(lengths, 32, seed=1, epoch=1)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    assert max(len(b) for b in batches) == 32


def test_train_batches_are_bucketed_and_seeded():
    lengths = [random.Random(i).randint(1, 200) for i in range(3200)]
    batches = train_batches(lengths, 32, seed=1, epoch=1)
    # Within-batch spread is far below the global spread thanks to length buckets.
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 20
    assert batches == train_batches(lengths, 32, seed=1, epoch=1)
    assert batches != train_batches(lengths, 32, seed=1, epoch=2)


def test_train_batches_shard_disjointly_across_ranks():
    lengths = list(range(1, 1001))
    shards = [train_batches(lengths, 10, seed=3, epoch=1, rank=r, world_size=3) for r in range(3)]
    assert len({len(s) for s in shards}) == 1
    seen = [i for s in shards for b in s for i in b]
    assert len(seen) == len(set(seen))


def test_eval_batches_sorted_and_complete():
    lengths = [5, 1, 9, 3, 7]
    batches = eval_batches(lengths, 2)
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]
    assert [lengths[i] for b in batches for i in b] == [9, 7, 5, 3, 1]


def test_collate_pads_to_longest_in_batch():
    ids, mask = collate([[1, 2, 3], [4]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
