"""`convtune bench` end to end on toy data with the tiny encoder (every job in a child process)."""

import json

import pytest

from convtune.experiments.bench import run_bench


def test_bench_runs_every_job_and_writes_reports(tiny_encoder, toy_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVTUNE_CACHE", str(tmp_path / "cache"))
    res = run_bench(data=str(toy_csv), encoder=str(tiny_encoder), epochs=1, frozen_epochs=2,
                    batch_size=16, max_length=16, out_dir=str(tmp_path / "bench"), log=lambda m: None)
    for job in ("convtune_finetune", "convtune_ddp", "convtune_frozen_cold", "convtune_frozen_warm", "convtune_predict"):
        # A process that has imported torch holds well over 100 MB: a figure below that is not
        # the child's peak (the parent's, or kilobytes read as megabytes).
        assert 100 < res[job]["peak_rss_mb"] < 16_000, (job, res[job]["peak_rss_mb"])
    assert res["convtune_frozen_warm"]["cache_seconds"] < res["convtune_frozen_cold"]["cache_seconds"]
    assert res["convtune_predict"]["texts"] == 20
    assert set(res["ratios"]) >= {"ddp_samples_per_s_vs_one_process", "frozen_warm_fit_speedup_vs_cold_fit"}
    assert res["convtune_ddp"]["processes"] == 2 and res["convtune_finetune"]["processes"] == 1
    assert res["peak"]["bf16"] > 0 and res["peak"]["fp32"] > 0
    assert res["flops"]["convtune_train"] > 2 * res["flops"]["convtune_predict"] > 0  # backward costs about 2x forward
    assert all(0 < m["mfu"] < 1 for m in res["mfu"].values()), res["mfu"]
    md = (tmp_path / "bench" / "results.md").read_text()
    assert "Trainer" not in md and "texts/s" in md and "MFU" in md and "2 processes (torchrun)" in md
    assert json.loads((tmp_path / "bench" / "results.json").read_text())["config"]["epochs"] == 1


def test_a_bad_job_argument_is_one_line_from_the_child(tmp_path):
    # A data set name the child cannot resolve used to surface as a RuntimeError holding the
    # child's traceback; now the child's own one-line message comes back as a ConvtuneError.
    from convtune.errors import ConvtuneError

    with pytest.raises(ConvtuneError, match="bench job convtune_train: 'no_such_set' is neither a file"):
        run_bench(data="no_such_set", out_dir=str(tmp_path / "b"), log=lambda m: None)
    assert not (tmp_path / "b").exists()  # nothing half-written


@pytest.mark.parametrize("verb,option", [("bench", ["--epochs", "0"]), ("bench", ["--train-limit", "1"]),
                                         ("compare", ["--max-length", "0"]), ("compare", ["--seeds", "0"])])
def test_bench_and_compare_numbers_are_usage_errors(verb, option, capsys):
    from convtune.cli import main

    with pytest.raises(SystemExit) as e:
        main([verb, "--data", "sst2", *option, "--out", "x"])
    assert e.value.code == 2 and "wants" in capsys.readouterr().err


def test_bench_jobs_take_given_dev_and_test_files(tmp_path):
    # bench/sms/reference_split.py runs the peer on three fixed files; without the dev / test
    # keys the job would re-split the train file and score another test set.
    from convtune.experiments.bench import bench_splits

    files = {}
    for part, n in (("train", 20), ("dev", 6), ("test", 4)):
        rows = [{"text": f"{part} text {i}", "label": "ab"[i % 2]} for i in range(n)]
        files[part] = tmp_path / f"{part}.jsonl"
        files[part].write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = bench_splits({"data": str(files["train"]), "dev": str(files["dev"]), "test": str(files["test"]), "seed": 1})
    assert (len(s.train), len(s.dev), len(s.test)) == (20, 6, 4)
    assert s.test.texts[0] == "test text 0"


def test_flops_are_counted_as_the_matrix_products_need():
    import torch

    from convtune.experiments.mfu import flops_per_text

    layer = torch.nn.Linear(8, 3, bias=False)
    batches = [(torch.randn(4, 8), None), (torch.randn(2, 8), None)]
    forward = lambda x, _mask: layer(x)  # noqa: E731
    assert flops_per_text(forward, batches, train=False) == 2 * 8 * 3  # one multiply-add per weight
    # backward: the weight's gradient only (the input needs none): as much again
    assert flops_per_text(forward, batches, train=True) == 2 * (2 * 8 * 3)
