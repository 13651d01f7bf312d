import random

from convtune.data.batching import collate, eval_batches, train_batches, train_steps


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


def test_train_steps_share_each_global_batch_between_ranks_and_micro_batches():
    lengths = [random.Random(i).randint(1, 60) for i in range(1003)]
    one = train_steps(lengths, 40, seed=3, epoch=1)  # one process, batch 40
    for world, accum in ((2, 1), (1, 2), (2, 2), (4, 1)):
        per_rank = [train_steps(lengths, 40 // (world * accum), seed=3, epoch=1, world_size=world, rank=r,
                                accum=accum) for r in range(world)]
        assert len({len(s) for s in per_rank}) == 1  # every rank the same number of steps
        kept = [step for step in one if step.total >= world * accum]  # 1003 = 25 x 40 + 3: the 3 go with 4 parts
        assert len(kept) == len(per_rank[0]) == 25 + (world * accum <= 3)
        for t, step in enumerate(kept):  # ... and together exactly the texts of one process's step t
            shares = [m for s in per_rank for m in s[t].micro]
            assert len(shares) == world * accum and sorted(sum(shares, [])) == sorted(step.micro[0])
            assert all(s[t].total == step.total == len(step.micro[0]) for s in per_rank)
    assert [s.micro[0] for s in one] == train_batches(lengths, 40, seed=3, epoch=1)


def test_a_last_batch_too_small_to_share_is_dropped():
    steps = [train_steps([5] * 13, 4, seed=0, epoch=1, world_size=4, rank=r) for r in range(4)]
    assert {len(s) for s in steps} == {1}  # 13 texts: one step of 13 (16 asked), none left over
    assert sum(len(m) for s in steps for m in s[0].micro) == 13
    assert len(train_steps([5] * 3, 4, seed=0, epoch=1, world_size=4)) == 0  # 3 texts, 4 ranks


def test_texts_read_in_windows_go_through_the_model_at_most_a_batch_of_windows_at_a_time():
    rng = random.Random(0)
    windows = [rng.choice([1, 1, 2, 8, 12]) for _ in range(500)]   # 12: more than a batch alone
    lengths = [128 * w for w in windows]
    plain = train_steps(lengths, 10, seed=1, epoch=1, accum=2)
    capped = train_steps(lengths, 10, seed=1, epoch=1, accum=2, windows=windows)
    assert len(capped) == len(plain) and [s.total for s in capped] == [s.total for s in plain]
    for a, b in zip(plain, capped):
        assert sum(b.micro, []) == sum(a.micro, [])                 # the same texts, in order
        assert all(sum(windows[t] for t in piece) <= 10 or len(piece) == 1 for piece in b.micro)
    assert any(len(b.micro) > len(a.micro) for a, b in zip(plain, capped))  # some were cut
    assert any(len(p) == 1 and windows[p[0]] == 12 for b in capped for p in b.micro)


def test_eval_batches_sorted_and_complete():
    lengths = [5, 1, 9, 3, 7]
    batches = eval_batches(lengths, 2)
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]
    assert [lengths[i] for b in batches for i in b] == [9, 7, 5, 3, 1]


def test_collate_pads_to_longest_in_batch():
    ids, mask = collate([[1, 2, 3], [4]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_head_tail_keeps_the_first_and_last_tokens(tiny_encoder):
    from transformers import AutoTokenizer

    from convtune.data.batching import long_share, tokenize

    tok = AutoTokenizer.from_pretrained(tiny_encoder)
    words = ["good", "the", "a", "film", "movie", "was", "is", "it", "plot", "and", "very", "this", "bad"]
    long_text, short = " ".join(words), "good film"
    head_tail = tokenize(tok, [long_text, short], 10, "head-tail").ids
    truncated = tokenize(tok, [long_text, short], 10).ids
    decoded = tok.convert_ids_to_tokens(head_tail[0])
    # 8 tokens of room: the first 2 and the last 6, between [CLS] and [SEP]
    assert decoded == ["[CLS]", "good", "the", "it", "plot", "and", "very", "this", "bad", "[SEP]"]
    assert tok.convert_ids_to_tokens(truncated[0])[-2:] == ["it", "[SEP]"]  # truncation loses "bad"
    assert head_tail[1] == truncated[1]  # a text that fits is left alone
    assert long_share(tok, [long_text, short], 10) == 0.5
    huge = tokenize(tok, ["good " + "the " * 250_000 + "bad"], 10, "head-tail").ids[0]  # 1 MB
    assert tok.convert_ids_to_tokens(huge)[1] == "good" and tok.convert_ids_to_tokens(huge)[-2] == "bad"


def test_windows_cover_every_token_with_the_stride(tiny_encoder):
    from transformers import AutoTokenizer

    from convtune.data.batching import LongText, tokenize, window_reach

    tok = AutoTokenizer.from_pretrained(tiny_encoder)
    words = ["good", "the", "a", "film", "movie", "was", "is", "it", "plot", "and", "very", "this", "bad"]
    enc = tokenize(tok, [" ".join(words), "good film"], 10, LongText("windows", stride=4))
    # 8 tokens of room, a window every 4: starts 0, 4 and 8 (the last one reaches "bad"), then
    # the short text as one window, the very ids truncation gives it
    assert enc.owner == [0, 0, 0, 1]
    first, second, third, short = (tok.convert_ids_to_tokens(w) for w in enc.ids)
    assert first == ["[CLS]", *words[:8], "[SEP]"] and second == ["[CLS]", *words[4:12], "[SEP]"]
    assert third == ["[CLS]", *words[8:], "[SEP]"] and enc.ids[3] == tokenize(tok, ["good film"], 10).ids[0]
    assert enc.text_lengths() == [27, 4] and enc.texts() == 2
    assert enc.windows_of([1, 0])[0] == [3, 0, 1, 2] and enc.windows_of([1, 0])[1].tolist() == [0, 1, 1, 1]
    capped = tokenize(tok, [" ".join(words)], 10, LongText("windows", stride=4, max_windows=2))
    assert capped.owner == [0, 0] and capped.ids == enc.ids[:2]
    assert window_reach(tok, 10, LongText("windows", stride=4, max_windows=2)) == 8 + 4 + 2


def test_window_logits_pool_by_mean_or_max_and_keep_their_gradient():
    import torch

    from convtune.data.batching import Encoded, pool_windows, text_logits

    logits = torch.tensor([[1.0, 4.0], [3.0, 0.0], [5.0, 5.0]], requires_grad=True)
    seg = torch.tensor([0, 0, 1])
    assert pool_windows(logits, seg, 2, "mean").tolist() == [[2.0, 2.0], [5.0, 5.0]]
    assert pool_windows(logits, seg, 2, "max").tolist() == [[3.0, 4.0], [5.0, 5.0]]
    pool_windows(logits, seg, 2, "mean").sum().backward()
    assert logits.grad.tolist() == [[0.5, 0.5], [0.5, 0.5], [1.0, 1.0]]
    # prediction: batches of windows (here one window a batch), pooled back in text order
    enc = Encoded([[1], [2, 2], [3]], owner=[0, 0, 1])
    out = text_logits(lambda idx: torch.tensor([[float(enc.ids[i][0])] for i in idx]), enc, batch_size=1)
    assert out.tolist() == [[1.5], [3.0]]


def test_long_text_rule_refuses_bad_settings():
    import pytest

    from convtune.data.batching import LongText
    from convtune.errors import ConvtuneError

    for bad in ({"rule": "window"}, {"rule": "windows", "stride": 0}, {"rule": "windows", "pool": "sum"},
                {"rule": "windows", "max_windows": -1}):
        with pytest.raises(ConvtuneError):
            LongText(**bad)
    with pytest.raises(ConvtuneError, match="bad windows settings"):
        LongText.of("windows", {"strides": 3})
    assert LongText.of("windows", {"stride": 3}).settings() == {"stride": 3, "pool": "mean", "max_windows": 8}
