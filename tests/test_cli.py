"""CLI wiring with the tiny encoder: train -> evaluate -> predict, and one-line errors."""

import csv
import json

import pytest

from convtune.cli import main


@pytest.fixture(scope="module")
def run_dir(tiny_encoder, tmp_path_factory):
    from .conftest import toy_texts

    d = tmp_path_factory.mktemp("cli")
    texts, labels = toy_texts(300)
    with (d / "data.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["review", "sentiment"])
        w.writerows(zip(texts, labels))
    rc = main(["train", "--data", str(d / "data.csv"), "--label-col", "sentiment",
               "--encoder", str(tiny_encoder), "--epochs", "2", "--batch-size", "16",
               "--lr", "3e-3", "--head-lr", "1e-2", "--max-length", "16", "--precision", "fp32", "--filters", "8",
               "--out", str(d / "run")])
    assert rc == 0
    return d


def test_train_writes_a_complete_run(run_dir):
    run = run_dir / "run"
    for name in ("convtune.json", "head.safetensors", "metrics.json", "split.json",
                 "confusion_matrix.png", "training_curve.png", "encoder/config.json"):
        assert (run / name).exists(), name
    m = json.loads((run / "metrics.json").read_text())
    for key in ("dataset", "encoder", "head", "mode", "seed", "train_seconds", "best_epoch", "history", "labels"):
        assert key in m, key
    for part in ("dev", "test"):
        assert {"accuracy", "macro_f1", "per_class", "confusion_matrix"} <= set(m[part])
    assert m["labels"] == ["neg", "pos"] and len(m["history"]) >= 1
    split = json.loads((run / "split.json").read_text())
    assert split["method"].startswith("de-duplicated") and split["seed"] == 42


def test_explain_texts_and_a_data_set(run_dir, capsys):
    assert (run_dir / "run" / "reliability.png").is_file()
    assert main(["explain", str(run_dir / "run"), "--top", "2", "--json", "good film", "awful plot"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["good film", "awful plot"] and all("ngrams" in r for r in rows)
    assert main(["explain", str(run_dir / "run"), "good film"]) == 0
    assert "-> " in capsys.readouterr().out
    assert main(["explain", str(run_dir / "run"), "--data", str(run_dir / "data.csv"), "--label-col", "sentiment",
                 "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "neg: the n-grams" in out and "pos: the n-grams" in out
    assert main(["explain", str(run_dir / "run")]) == 2
    assert "explain wants texts or --data" in capsys.readouterr().err


def test_run_directory_carries_a_model_card(run_dir):
    import yaml

    text = (run_dir / "run" / "README.md").read_text()
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "convtune" and meta["pipeline_tag"] == "text-classification"
    assert meta["model-index"][0]["results"][0]["metrics"][0]["type"] == "accuracy"
    m = json.loads((run_dir / "run" / "metrics.json").read_text())
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == round(m["test"]["accuracy"], 4)
    for section in ("## Labels", "## Data and split", "## Command", "convtune train --data", "## Results",
                    "## Encoder and licence", "## Known limits"):
        assert section in body, section


def test_evaluate_writes_eval_json(run_dir, capsys):
    assert main(["evaluate", str(run_dir / "run"), "--data", str(run_dir / "data.csv"),
                 "--label-col", "sentiment"]) == 0
    assert "macro-F1" in capsys.readouterr().out
    assert json.loads((run_dir / "run" / "eval-data.json").read_text())["size"] == 300


def test_predict_texts_and_files(run_dir, capsys):
    assert main(["predict", str(run_dir / "run"), "good film", "awful plot"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["good film", "awful plot"]
    assert set(rows[0]["probabilities"]) == {"neg", "pos"}
    out = run_dir / "pred.csv"
    assert main(["predict", str(run_dir / "run"), "--input", str(run_dir / "data.csv"),
                 "--text-col", "review", "--output", str(out)]) == 0
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 300 and set(rows[0]) == {"text", "label", "p_neg", "p_pos"}


@pytest.mark.parametrize("argv,match", [
    (["train", "--data", "missing.csv", "--out", "x"], "neither a file nor a built-in"),
    (["evaluate", "no-such-dir", "--data", "x.csv"], "not a convtune model directory"),
    (["predict", "no-such-dir", "hi"], "not a convtune model directory"),
])
def test_errors_are_one_line(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and "Traceback" not in err


def test_train_refuses_existing_out(run_dir, tiny_encoder, capsys):
    rc = main(["train", "--data", str(run_dir / "data.csv"), "--label-col", "sentiment",
               "--encoder", str(tiny_encoder), "--out", str(run_dir / "run")])
    assert rc == 2 and "already exists" in capsys.readouterr().err


def test_datasets_and_encoders_list(capsys):
    assert main(["datasets"]) == 0 and "sms_spam" in capsys.readouterr().out
    assert main(["encoders"]) == 0 and "minilm-l6" in capsys.readouterr().out


def test_bad_head_option_is_one_line(toy_csv, tiny_encoder, tmp_path, capsys):
    rc = main(["train", "--data", str(toy_csv), "--encoder", str(tiny_encoder), "--pooling", "median",
               "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and "pooling must be" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists() and list(tmp_path.glob(".x.partial-*")) == []


@pytest.mark.parametrize("option,match", [
    (["--lr", "-1"], "lr must be > 0"), (["--head-lr", "0"], "head_lr must be > 0"),
    (["--warmup-ratio", "2"], "warmup_ratio must be in"),
    (["--label-smoothing", "1.5"], "label_smoothing must be in"), (["--filters", "0"], "filters per width"),
    (["--dropout", "1"], "dropout must be in"), (["--ema", "1"], "ema must be in"), (["--head", "textcnn", "--filters", "-1"], "textcnn head: filters"),
    (["--head", "linear", "--pooling", "max"], "linear head: pooling"),
])
def test_bad_numbers_fail_before_the_data_is_read(option, match, tmp_path, capsys):
    # The data file does not exist: the option must be refused first, in one line.
    assert main(["train", "--data", str(tmp_path / "missing.csv"), *option, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and not (tmp_path / "x").exists()


@pytest.mark.parametrize("option", ["--epochs", "--batch-size", "--patience", "--grad-accum", "--eval-batch-size"])
def test_counts_below_one_are_usage_errors_in_every_verb_that_takes_them(option, tmp_path, capsys):
    # A count's range is part of its one declaration (config.TrainConfig): train, compare and
    # bench refuse 0 alike, before any data is read.
    from convtune.cli.options import VERBS

    for verb in [v for v, (_, parts) in VERBS.items() if any(
            cls.__name__ == "TrainConfig" and (only is None or option[2:].replace("-", "_") in only)
            for cls, only, _ in parts)]:
        with pytest.raises(SystemExit) as e:
            main([verb, *(["m", "t"] if verb == "predict" else ["--data", str(tmp_path / "no.csv")]), option, "0",
                  "--out", str(tmp_path / "x")])
        assert e.value.code == 2 and f"argument {option}: wants a whole number >= 1, not '0'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_train_limit_below_two_is_refused(toy_csv, tiny_encoder, tmp_path, capsys):
    # --train-limit 0 used to mean "no limit" and trained on everything.
    with pytest.raises(SystemExit) as e:  # the option's range (argparse's usage line), as every verb reads it
        main(["train", "--data", str(toy_csv), "--encoder", str(tiny_encoder), "--train-limit", "0",
              "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and "--train-limit: wants at least 2 texts, not '0'" in capsys.readouterr().err


def test_predict_to_missing_folder_is_one_line(run_dir, capsys):
    assert main(["predict", str(run_dir / "run"), "--input", str(run_dir / "data.csv"),
                 "--text-col", "review", "--output", str(run_dir / "nope" / "out.csv")]) == 2
    assert "folder does not exist" in capsys.readouterr().err


def test_empty_text_on_the_command_line_is_refused(capsys):
    # `convtune predict DIR "$TEXT"` with TEXT unset used to print a confident label for "".
    assert main(["predict", "some-dir", "fine", "  "]) == 2
    err = capsys.readouterr().err
    assert "text 2 of the command line is empty" in err and err.count("\n") == 1


def _interrupt_predict_on_call(monkeypatch, n: int):
    """Make the n-th Classifier.predict_proba call raise KeyboardInterrupt (Ctrl-C mid-run);
    returns the original method, to put back."""
    from convtune.estimators.transformer import Classifier

    original = Classifier.predict_proba
    calls = {"n": 0}

    def interrupted(self, texts, batch_size=None):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return original(self, texts, batch_size)

    monkeypatch.setattr(Classifier, "predict_proba", interrupted)
    return original


def test_interrupted_predict_resumes(run_dir, monkeypatch, capsys):
    import convtune.deploy.predict_io as pio
    from convtune.estimators.transformer import Classifier

    monkeypatch.setattr(pio, "CHUNK", 64)  # 300 texts -> 5 chunks
    args = ["predict", str(run_dir / "run"), "--input", str(run_dir / "data.csv"), "--text-col", "review"]
    assert main(args + ["--output", str(run_dir / "full.csv")]) == 0

    original = _interrupt_predict_on_call(monkeypatch, 3)
    out = run_dir / "resumed.csv"
    assert main(args + ["--output", str(out)]) == 130
    assert not out.exists() and len(list(run_dir.glob(".resumed.csv.partial-*"))) == 2  # partial + marker
    monkeypatch.setattr(Classifier, "predict_proba", original)
    assert main(args + ["--output", str(out)]) == 0
    assert "resuming" in capsys.readouterr().err
    assert out.read_text() == (run_dir / "full.csv").read_text()
    assert not list(run_dir.glob(".resumed.csv.*"))


def _train_help() -> dict[str, str]:
    """`convtune train` option -> its help text."""
    import argparse

    from convtune.cli.options import parser as _parser

    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.option_strings[-1]: a.help or "" for a in sub.choices["train"]._actions if a.option_strings}


def test_train_options_come_from_the_config_fields():
    # One option per TrainConfig / RuntimeConfig field, its help stating the field's default
    # (and TextCNN's where its recipe differs): a new hyper-parameter is written once.
    from dataclasses import fields

    from convtune.config import TEXTCNN_TRAIN_DEFAULTS, RuntimeConfig, TrainConfig

    help_ = _train_help()
    for f in (*fields(TrainConfig), *fields(RuntimeConfig)):
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        assert f.metadata["help"] in help_[flag], flag
        if f.default not in (None, False):
            shown = f"{f.default:g}" if isinstance(f.default, float) else str(f.default)
            assert f"(default {shown}" in help_[flag], (flag, help_[flag])
    assert "(default 5; textcnn: 10)" in help_["--epochs"]
    assert TEXTCNN_TRAIN_DEFAULTS["epochs"] == 10


def test_predict_batch_size_must_be_positive(capsys):
    # -1 used to reach the batching code and end in a traceback.
    with pytest.raises(SystemExit) as e:
        main(["predict", "some-dir", "hi", "--batch-size", "-1"])
    assert e.value.code == 2 and "whole number >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("option,match", [
    (["--port", "99999"], "port number from 1 to 65535"), (["--workers", "0"], "whole number >= 1"),
    (["--max-texts", "-3"], "whole number >= 1"), (["--batch-wait-ms", "nan"], "milliseconds from 0 to 10000"),
    (["--batch-wait-ms", "inf"], "milliseconds from 0 to 10000"),
])
def test_bad_serve_options_are_usage_errors(option, match, capsys):
    # --port 99999 used to end in an OverflowError traceback from bind().
    with pytest.raises(SystemExit) as e:
        main(["serve", "some-dir", *option])
    assert e.value.code == 2 and match in capsys.readouterr().err


def test_predict_reads_a_pipe_with_input_dash(run_dir, monkeypatch, capsys):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"good film\n\nawful plot\r\n")))
    assert main(["predict", str(run_dir / "run"), "--input", "-"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["good film", "awful plot"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"caf\xe9\n")))
    assert main(["predict", str(run_dir / "run"), "--input", "-"]) == 2
    assert "standard input: not valid utf-8" in capsys.readouterr().err


def test_predict_output_onto_its_input_is_refused(run_dir, capsys):
    data = run_dir / "data.csv"
    before = data.read_bytes()
    assert main(["predict", str(run_dir / "run"), "--input", str(data), "--text-col", "review",
                 "--output", str(data)]) == 2
    assert "is the --input file" in capsys.readouterr().err and data.read_bytes() == before


# ---------------------------------------------------------------- hardening

def _train_tiny(tiny_encoder, data, out, *extra) -> int:
    return main(["train", "--data", str(data), "--label-col", "sentiment", "--encoder", str(tiny_encoder),
                 "--epochs", "1", "--batch-size", "16", "--max-length", "16", "--precision", "fp32", "--filters", "8",
                 "--out", str(out), *extra])


def test_resumed_predict_starts_over_when_the_model_was_retrained(run_dir, tiny_encoder, tmp_path, monkeypatch,
                                                                  capsys):
    import convtune.deploy.predict_io as pio
    from convtune.estimators.transformer import Classifier

    model = tmp_path / "model"
    assert _train_tiny(tiny_encoder, run_dir / "data.csv", model) == 0
    monkeypatch.setattr(pio, "CHUNK", 64)
    out = tmp_path / "out.csv"
    args = ["predict", str(model), "--input", str(run_dir / "data.csv"), "--text-col", "review", "--output", str(out)]
    original = _interrupt_predict_on_call(monkeypatch, 2)  # after the first chunk
    assert main(args) == 130
    monkeypatch.setattr(Classifier, "predict_proba", original)
    # Retrain into the same directory on other labels (the run is the same path, not the same model).
    relabelled = tmp_path / "other.csv"
    rows = list(csv.DictReader((run_dir / "data.csv").open()))
    with relabelled.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["review", "sentiment"])
        w.writerows((r["review"], {"pos": "good", "neg": "bad"}[r["sentiment"]]) for r in rows)
    assert _train_tiny(tiny_encoder, relabelled, model, "--overwrite") == 0
    capsys.readouterr()
    assert main(args) == 0
    assert "resuming" not in capsys.readouterr().err
    lines = list(csv.DictReader(out.open()))
    assert len(lines) == 300 and set(lines[0]) == {"text", "label", "p_bad", "p_good"}
    assert {r["label"] for r in lines} <= {"bad", "good"}


def test_predict_refuses_an_existing_output_unless_overwrite(run_dir, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    args = ["predict", str(run_dir / "run"), "--input", str(run_dir / "data.csv"), "--text-col", "review",
            "--output", str(out)]
    assert main(args) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err and out.read_text() == "precious\n"
    assert main(args + ["--overwrite"]) == 0
    assert len(out.read_text().splitlines()) == 300


def test_predict_to_a_folder_is_refused_before_any_work(run_dir, tmp_path, capsys):
    (tmp_path / "folder").mkdir()
    assert main(["predict", "no-such-model", "--input", str(run_dir / "data.csv"), "--text-col", "review",
                 "--output", str(tmp_path / "folder")]) == 2  # refused before the (missing) model is loaded
    assert f"{tmp_path / 'folder'} is a folder" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]


def test_predict_refuses_a_lone_surrogate_and_leaves_no_partial(run_dir, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "good film"}\n{"text": "bad \\ud800 film"}\n')
    out = tmp_path / "out.csv"
    assert main(["predict", str(run_dir / "run"), "--input", str(src), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "in.jsonl:2: the text holds a lone surrogate" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


@pytest.mark.parametrize("option, match", [
    (["--seed", "-1"], "--seed: wants a whole number from 0 to 4294967295"),
    (["--seed", "1e20"], "--seed: wants a whole number from 0 to 4294967295"),
    (["--seed", "100000000000000000000"], "--seed: wants a whole number from 0 to 4294967295"),
])
def test_absurd_seeds_are_usage_errors(option, match, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", "x.csv", "--out", str(tmp_path / "o"), *option])
    assert e.value.code == 2 and match in capsys.readouterr().err


@pytest.mark.parametrize("option, match", [
    (["--layers", "last-1000"], "has 2 layers; use --layers last-2 or less"),
    (["--filters", "1000000000"], "filters per width must be a whole number from 1 to 4096"),
    (["--kernel-sizes", "100000"], "kernel sizes must be 1 to 16 whole numbers from 1 to 64"),
])
def test_absurd_sizes_are_one_line(option, match, toy_csv, tiny_encoder, tmp_path, capsys):
    assert main(["train", "--data", str(toy_csv), "--encoder", str(tiny_encoder), "--epochs", "1",
                 "--out", str(tmp_path / "o"), *option]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err and [p.name for p in tmp_path.iterdir()] == ["toy.csv"]


def test_a_nan_loss_stops_training_and_saves_nothing(toy_csv, tiny_encoder, tmp_path, capsys):
    rc = main(["train", "--data", str(toy_csv), "--encoder", str(tiny_encoder), "--epochs", "2", "--precision", "fp32",
               "--head-lr", "1e30", "--lr", "1e30", "--max-length", "16", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "training loss became nan" in err and "nothing was saved" in err
    assert [p.name for p in tmp_path.iterdir()] == ["toy.csv"]  # no run directory, no partial


@pytest.mark.parametrize("seed", ["-1", str(2**32), "x"])
def test_audit_seed_is_range_checked_as_train_s_is(seed, capsys):
    with pytest.raises(SystemExit) as e:
        main(["audit", "--data", "sms_spam", "--seed", seed, "--out", "unused"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument --seed: wants a whole number from 0 to 4294967295" in err
    assert "Traceback" not in err


def test_an_interrupted_train_says_what_rerunning_does(tmp_path, monkeypatch, capsys):
    import convtune.experiments.runs as runs

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "train_run", interrupted)
    (tmp_path / "d.csv").write_text("text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(20)))
    assert main(["train", "--data", str(tmp_path / "d.csv"), "--head", "tfidf-svm", "--out", str(tmp_path / "r")]) == 130
    assert capsys.readouterr().err.strip() == f"interrupted: {tmp_path / 'r'} was not written; rerunning the " \
                                              "command trains from the start"


def _options_by_verb() -> dict[str, dict[str, tuple]]:
    """verb -> visible flag -> (default, help, choices, required) as argparse holds them."""
    import argparse

    from convtune.cli.options import parser

    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {verb: {flag: (a.default, a.help, tuple(a.choices or ()), a.type and getattr(a.type, "__name__", None))
                   for a in p._actions if a.help != argparse.SUPPRESS for flag in a.option_strings if flag != "-h"}
            for verb, p in sub.choices.items()}


def test_an_option_shared_by_verbs_has_one_default_and_one_help():
    seen: dict[str, tuple] = {}
    for verb, options in _options_by_verb().items():
        for flag, spec in options.items():
            first = seen.setdefault(flag, (verb, spec))
            assert spec == first[1], f"{flag}: {verb} says {spec}, {first[0]} says {first[1]}"
    assert {"--data", "--encoder", "--out", "--seed", "--threads", "--device"} <= set(seen)


def test_every_option_is_made_from_a_dataclass_field():
    import re
    from pathlib import Path

    import convtune.cli

    calls = sum(len(re.findall(r"\.add_argument\(", p.read_text())) for p in Path(convtune.cli.__file__).parent.glob("*.py"))
    assert calls <= 3  # the generator's own calls (cli/fields.py) and none written per option


@pytest.mark.parametrize("given, expected", [("last-4", 4), ("3", 3)])
def test_layers_read_as_last_k(given, expected):
    from convtune.cli.options import parser

    assert parser().parse_args(["train", "--data", "x", "--out", "o", "--layers", given]).layers == expected


def test_model_options_come_from_the_model_dataclasses():
    # The help states each default as its dataclass declares it: nothing is written twice.
    from convtune.modeling.settings import TEXTCNN_HEAD, CNNHeadConfig

    help_ = _train_help()
    assert f"default {CNNHeadConfig().num_filters}; textcnn: {TEXTCNN_HEAD.num_filters}" in help_["--filters"]
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", "x", "--out", "o", "--layers", "last-x"])
    assert e.value.code == 2


def test_the_blend_line_gives_each_part_alone():
    from convtune.cli.verbs import blend_line

    kept = {"kept": True, "weight": 0.35, "test": {"neural": {"accuracy": 0.8}, "lexical": {"accuracy": 0.82},
                                                   "blend": {"accuracy": 0.86}}}
    line = blend_line(kept, "test")
    assert "weight 0.35" in line and "blend 0.8600" in line and "neural alone 0.8000" in line and "TF-IDF alone 0.8200" in line
    dropped = {"kept": False, "weight": 1.0, "neural_dev_macro_f1": 0.9, "lexical_dev_macro_f1": 0.7}
    assert "left out" in blend_line(dropped, "test") and "0.9000" in blend_line(dropped, "test")


def test_train_without_a_mode_uses_the_small_data_recipe_on_few_texts(tiny_encoder, tmp_path, capsys):
    from .conftest import toy_texts

    texts, labels = toy_texts(40)  # 20 texts a class: under the small-data threshold
    path = tmp_path / "few.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *zip(texts, labels)])
    common = ["--data", str(path), "--encoder", str(tiny_encoder), "--max-length", "16", "--precision", "fp32",
              "--pairs-per-text", "2"]
    assert main(["train", *common, "--out", str(tmp_path / "auto")]) == 0
    err = capsys.readouterr().err
    assert "small-data recipe" in err and "give --mode to choose" in err
    m = json.loads((tmp_path / "auto" / "metrics.json").read_text())
    manifest = json.loads((tmp_path / "auto" / "convtune.json").read_text())
    assert m["recipe"].startswith("small data") and "small-data recipe" in (tmp_path / "auto" / "README.md").read_text()
    assert manifest["model"]["mode"] == "contrastive" and manifest["model"]["head"] == "linear"
    assert m["dev"]["size"] == m["train_size"]  # no dev split carved from so few texts
    # a mode given is a mode obeyed
    assert main(["train", *common, "--mode", "finetune", "--epochs", "1", "--out", str(tmp_path / "ft")]) == 0
    assert "small-data" not in capsys.readouterr().err
    assert json.loads((tmp_path / "ft" / "convtune.json").read_text())["model"]["mode"] == "finetune"
