"""convtune search: the space, pruning through the loop's callbacks, resume after kill -9, workers
on a journal file and on a real PostgreSQL server, the report and the best model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convtune.cli import main
from convtune.errors import ConvtuneError
from convtune.experiments import search as S
from convtune.experiments.search_report import expected_best
from convtune.experiments.search_space import Param, default_space, defaults, read_space, sample, without

# Trials of a few seconds: the tiny BERT, short texts, two epochs, one fixed batch size.
FAST = ["--max-length", "16", "--precision", "fp32", "--batch-size", "16", "--epochs", "2", "--filters", "8"]


def _search_cmd(toy_csv, tiny_encoder, out, *extra) -> list[str]:
    return ["search", "--data", str(toy_csv), "--encoder", str(tiny_encoder), *FAST, "--out", str(out), *extra]


def _study(out: Path, storage: str | None = None):
    import optuna

    storage = storage or f"sqlite:///{out / 'study.db'}"
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


def _finished(study) -> list:
    return [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]


# ----------------------------------------------------------------------------- the space

def test_expected_best_follows_dodge_et_al():
    curve = expected_best([0.5, 0.1, 0.9])
    assert curve[0] == pytest.approx(0.5)                         # one draw: the mean
    assert curve[1] == pytest.approx(0.1 / 9 + 0.5 * 3 / 9 + 0.9 * 5 / 9)  # two draws, with replacement
    assert curve == sorted(curve) and curve[-1] < 0.9


def test_fixing_the_optimizer_keeps_only_its_own_parameters():
    space = default_space("finetune", "cnn", 1e-4)
    sgd = {p.name for p in without(space, {"optimizer": "sgd"})}
    assert {"sgd_lr", "sgd_head_lr", "momentum"} <= sgd and not {"lr", "head_lr", "optimizer"} & sgd
    assert not {"lr", "sgd_lr"} & {p.name for p in without(space, {"lr": 1e-4})}
    assert {p.name for p in default_space("frozen", "linear", 1e-4)}.isdisjoint({"lr", "sgd_lr", "filters"})


def test_sample_follows_conditions_and_the_default_is_train_s_recipe():
    import optuna

    space = default_space("lora", "cnn", 1e-3)
    study = optuna.create_study(direction="maximize")
    for _ in range(12):
        trial = study.ask()
        options = sample(space, trial)
        assert ("momentum" in options) == (options["optimizer"] == "sgd")
        assert {"lora_r", "lora_alpha", "lr", "head_lr"} <= set(options)
        study.tell(trial, 0.5)
    start = defaults(space)
    assert start["lr"] == 1e-3 and start["optimizer"] == "adamw" and "momentum" not in start


@pytest.mark.parametrize(("text", "error"), [
    ("lr: [1, 2]", "lr wants a mapping"),
    ("lr: {type: float, low: 1.0e-3, high: 1.0e-5}", "low <= high"),
    ("colour: {type: categorical, choices: [red]}", "not a searchable option"),
    ("lr: {type: float, low: 0, high: 1, log: true}", "log range needs low > 0"),
    ("lr: {type: float, low: 1, high: 2, stride: 3}", "unknown keys stride"),
    ("- just a list", "wants a mapping of parameter names"),
    ("lr: {type: float, low: [", "not valid YAML"),
])
def test_bad_space_files_fail_in_one_line(tmp_path, text, error):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(ConvtuneError, match=error):
        read_space(path)


def test_a_space_file_replaces_the_default(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("momentum: {type: float, low: 0.5, high: 0.9, when: {optimizer: [sgd]}}\n"
                    "optimizer: {type: categorical, choices: [adamw, sgd], default: adamw}\n")
    space = read_space(path)
    assert [p.name for p in space] == ["momentum", "optimizer"] and space[0].when == {"optimizer": ["sgd"]}


# ----------------------------------------------------------------------------- trials

def test_pruning_runs_through_the_training_loop_and_leaves_no_model(tiny_encoder, tmp_path):
    import optuna

    from convtune import Classifier
    from convtune.data.splits import Splits
    from convtune.data.texts import TextSet

    from ..conftest import toy_texts

    splits = Splits(TextSet(*toy_texts(64)), TextSet(*toy_texts(16, seed=1)), None, "toy", {"seed": 0})
    build = lambda options: Classifier(encoder=str(tiny_encoder), max_length=16, precision="fp32", epochs=4,  # noqa: E731
                                       head_config={"num_filters": 4}, **options)
    space = [Param("head_lr", "float", 1e-3, 1e-2, log=True)]
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.1))
    study.optimize(S.make_objective(splits, build, space, tmp_path), n_trials=1)
    (t,) = study.trials
    assert t.state.name == "PRUNED" and list(t.intermediate_values) == [1]  # stopped after epoch 1 of 4
    assert not any((tmp_path / "trials").glob("*"))


def test_search_reports_and_its_best_model_loads(toy_csv, tiny_encoder, tmp_path):
    out = tmp_path / "search"
    assert main(_search_cmd(toy_csv, tiny_encoder, out, "--trials", "3")) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["counts"]["complete"] == 3 and res["trials"][0]["default"] is True
    assert res["best"]["dev_macro_f1"] == max(t["dev_macro_f1"] for t in res["trials"])
    assert res["baseline"]["test"]["accuracy"] > 0.5  # TF-IDF beside it
    for name in ("report.md", "report.html", "expected_best.png", "optimization_history.png"):
        assert (out / name).stat().st_size > 0
    assert "Expected best dev macro-F1" in (out / "report.md").read_text()
    metrics = json.loads((out / "best" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] == res["test"]["accuracy"]  # tested once, the best only
    assert list((out / "trials").iterdir()) == []                  # the others' models are gone
    from convtune.estimators.registry import load

    assert load(out / "best").predict(["a great movie"])[0] in ("pos", "neg")
    # The same command again: the study has its 3 trials; nothing reruns, the report stands.
    assert main(_search_cmd(toy_csv, tiny_encoder, out, "--trials", "3")) == 0
    assert len(_study(out).trials) == 3
    assert json.loads((out / "convtune-search.json").read_text())["study"] == _study(out).study_name


@pytest.mark.parametrize("theirs", ["notes.txt", "best/NOTES.md", "results.json", "trials/x", "study.db"])
def test_search_refuses_a_directory_it_did_not_write(toy_csv, tiny_encoder, tmp_path, capsys, theirs):
    """A folder is a search folder by the marker the search wrote, not by holding a file named
    like one of a search's (a user's best/NOTES.md or results.json would be replaced)."""
    folder = tmp_path / "mine"
    (folder / theirs).parent.mkdir(parents=True, exist_ok=True)
    (folder / theirs).write_text("mine")
    assert main(_search_cmd(toy_csv, tiny_encoder, folder)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a convtune search folder" in err[0] and "--overwrite" in err[0]
    assert (folder / theirs).read_text() == "mine" and [p.name for p in folder.iterdir()] == [theirs.split("/")[0]]


def test_kill_9_during_a_trial_then_rerun_continues_the_study(toy_csv, tiny_encoder, tmp_path):
    out = tmp_path / "search"
    # Eight epochs without early stopping: a trial lasts seconds, not one, so the poll below (a
    # study read every 0.3 s) sees trial 1 running even on a loaded machine.
    cmd = [sys.executable, "-m", "convtune", *_search_cmd(toy_csv, tiny_encoder, out, "--trials", "3", "--epochs", "8",
                                                          "--patience", "8")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    killed = None
    while time.time() < deadline and proc.poll() is None:  # wait for trial 1 to be running, then kill -9
        time.sleep(0.3)
        if not (out / "study.db").exists():
            continue
        try:
            study = _study(out)
        except Exception:  # the search is still creating its tables, or holds the lock
            continue
        # Trial 1 training: running, its parameters all drawn (pooling is the space's last one;
        # a kill while it samples would leave part of them for the retry to complete).
        running = [t for t in study.trials if t.state.name == "RUNNING" and t.number == 1 and "pooling" in t.params]
        if running:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed = 1
            break
    assert killed == 1, "trial 1 never started"
    assert _study(out).trials[1].state.name == "RUNNING"  # what a kill -9 leaves in the storage
    assert subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode == 0
    study = _study(out)
    states = {t.number: t.state.name for t in study.trials}
    assert states[0] == "COMPLETE" and states[1] == "FAIL"  # the interrupted one: failed ...
    retry = [t for t in study.trials if t.user_attrs.get("retry_of") == 1]
    assert len(retry) == 1 and retry[0].params == study.trials[1].params  # ... and retried, once
    assert len(_finished(study)) == 3
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    assert len(study.trials) == 4 and sum(bool(t.user_attrs.get("default")) for t in study.trials) == 1
    assert not list((out / "trials").glob(".trial-0001.*"))  # the killed trial's half-written model is gone


def test_two_workers_share_one_journal_study(toy_csv, tiny_encoder, tmp_path):
    out = tmp_path / "search"
    assert main(_search_cmd(toy_csv, tiny_encoder, out, "--trials", "4", "--workers", "2")) == 0
    assert (out / "journal.log").is_file() and not (out / "study.db").exists()
    study = _journal_study(out)
    finished = _finished(study)
    assert len(finished) == 4 and all(_surplus_only(t) for t in study.trials if t not in finished)
    assert len({t.user_attrs["worker"].split(":")[1] for t in finished}) == 2  # both processes ran trials
    params = [tuple(sorted(t.params.items())) for t in finished]
    assert len(set(params)) == 4


def _surplus_only(trial) -> bool:
    """A trial a worker opened after the budget was taken: failed, never trained, marked."""
    return trial.state.name == "FAIL" and trial.user_attrs.get("surplus") is True and not trial.params


def test_a_trial_opened_past_the_budget_steps_back_unrun():
    # Two workers both saw one trial left of 2 and both opened one: the later number steps back.
    import optuna
    from optuna.trial import Trial, TrialState

    from convtune.data.splits import Splits

    study = optuna.create_study(direction="maximize")
    study.tell(study.ask(), 0.5)                  # trial 0: complete
    other, late = study.ask(), study.ask()        # trial 1: the other worker's, running; trial 2: this one
    assert not S.surplus(other, 2) and S.surplus(late, 2) and not S.surplus(late, 3)
    splits = Splits(train=None, dev=None, test=None, name="unused")
    objective = S.make_objective(splits, lambda options: pytest.fail("a surplus trial must not train"), [],
                                 Path("unused"), budget=2)
    with pytest.raises(S.BudgetReached):
        objective(Trial(study, study.trials[2]._trial_id))
    study.tell(2, state=TrialState.FAIL)          # what study.optimize does with the caught error
    assert _surplus_only(study.trials[2]) and S.counts(study)["fail"] == 0 and S._taken(S.counts(study)) == 2


def _journal_study(out: Path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(out / "journal.log")))
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


# ----------------------------------------------------------------------------- PostgreSQL

@pytest.fixture(scope="module")
def postgres_url():
    """A throw-away PostgreSQL server on a free loopback port (Debian's binaries), or a skip."""
    import glob
    import shutil
    import socket
    import tempfile

    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]')")
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql)")
    bindir = Path(bins[-1]).parent
    as_user = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []  # postgres refuses root
    if as_user and not shutil.which("runuser"):
        pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
    root = Path(tempfile.mkdtemp(prefix="convtune-pg-"))
    if as_user:
        shutil.chown(root, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(*args):
        return subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=120)

    init = run(str(bindir / "initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "convtune", "--no-sync")
    start = init.returncode == 0 and run(str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log"),
                                         "-w", "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start")
    if not start or start.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"could not start PostgreSQL: {(init.stderr or getattr(start, 'stderr', '')).strip()[:200]}")
    try:
        created = run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "convtune", "optuna")
        assert created.returncode == 0, created.stderr
        yield f"postgresql+psycopg://convtune@127.0.0.1:{port}/optuna"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_on_a_postgresql_study(toy_csv, tiny_encoder, tmp_path, postgres_url):
    # Two independent processes (as on two machines), one study in a real PostgreSQL server.
    cmds = [[sys.executable, "-m", "convtune", *_search_cmd(toy_csv, tiny_encoder, tmp_path / f"w{i}", "--trials", "4",
                                                             "--storage", postgres_url, "--study", "shared")]
            for i in range(2)]
    env = dict(os.environ, CONVTUNE_THREADS="1")
    logs = [tmp_path / f"w{i}.log" for i in range(2)]  # files, not pipes: a chatty worker never blocks
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=log.open("wb"), env=env) for c, log in zip(cmds, logs)]
    codes = [p.wait(timeout=600) for p in procs]
    assert codes == [0, 0], "\n".join(f"worker {i} (exit {c}): ...{log.read_text(errors='replace')[-3000:]}"
                                       for i, (c, log) in enumerate(zip(codes, logs)) if c)
    study = _study(tmp_path, storage=postgres_url)
    finished = _finished(study)
    # Each worker stops once the study has 4 finished or running trials; two that both opened
    # the last one leave exactly one to run (search.surplus), and never repeat one.
    assert len(finished) == 4 and all(_surplus_only(t) for t in study.trials if t not in finished)
    assert len({t.user_attrs["worker"] for t in finished}) == 2
    assert len({tuple(sorted(t.params.items())) for t in finished}) == len(finished)


@pytest.mark.parametrize(("storage", "error"), [
    ("postgresql+psycopg://nobody@127.0.0.1:1/none", "cannot open the study database"),
    ("study.db", "wants a database URL"),
])
def test_a_bad_storage_is_one_line(toy_csv, tiny_encoder, tmp_path, capsys, storage, error):
    assert main(_search_cmd(toy_csv, tiny_encoder, tmp_path / "s", "--storage", storage)) == 2
    assert error in capsys.readouterr().err


def _optuna_said(caplog) -> list:
    """Optuna's log records as its handler would print them (after convtune's filter)."""
    return [r for r in caplog.records if r.name.startswith("optuna")]


def test_ctrl_c_in_a_trial_is_one_line_that_says_how_to_continue(toy_csv, tiny_encoder, tmp_path, monkeypatch,
                                                                 capsys, caplog):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(S, "train_run", interrupted)
    assert main(_search_cmd(toy_csv, tiny_encoder, tmp_path / "s", "--trials", "2")) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1:] == [
        "interrupted: the study keeps its finished trials; rerun the same command to continue it"]
    said = _optuna_said(caplog)
    assert not [r for r in said if r.exc_info or "failed" in r.getMessage()], [r.getMessage() for r in said]


def test_a_trial_that_fails_with_a_one_line_error_is_logged_without_a_traceback(toy_csv, tiny_encoder, tmp_path,
                                                                                  monkeypatch, capsys, caplog):
    from convtune.errors import TrainingDiverged

    def diverged(*args, **kwargs):
        raise TrainingDiverged("the training loss became NaN at step 3")

    monkeypatch.setattr(S, "train_run", diverged)
    assert main(_search_cmd(toy_csv, tiny_encoder, tmp_path / "s", "--trials", "2")) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        f"error: {S.MAX_FAILED_IN_A_ROW} trials in a row failed (see the messages above); the search stopped"
    failed = [r for r in _optuna_said(caplog) if "failed" in r.getMessage()]
    assert len(failed) == S.MAX_FAILED_IN_A_ROW and not any(r.exc_info for r in failed)
    assert all("the training loss became NaN at step 3" in r.getMessage() for r in failed)


def test_the_default_space_reads_its_defaults_from_the_dataclasses(monkeypatch):
    from dataclasses import dataclass

    from convtune.modeling import heads, settings
    from convtune.modeling.settings import AdapterConfig

    d = defaults(default_space("lora", "cnn", 1e-4))
    cnn, adapter = settings.CNNHeadConfig(), AdapterConfig()
    assert (d["filters"], d["kernel_sizes"], d["pooling"], d["dropout"]) == (
        cnn.num_filters, ",".join(map(str, cnn.kernel_sizes)), cnn.pooling, cnn.dropout)
    assert (d["lora_r"], d["lora_alpha"]) == (adapter.r, adapter.alpha)

    @dataclass
    class OtherDefaults(settings.CNNHeadConfig):  # the head's defaults change: trial 0 follows them
        def __post_init__(self):
            super().__post_init__()
            self.kernel_sizes, self.num_filters, self.pooling, self.dropout = [3, 4, 5], 256, "mean", 0.2

    monkeypatch.setitem(heads.HEADS, "cnn", (heads.HEADS["cnn"][0], OtherDefaults))
    d = defaults(default_space("finetune", "cnn", 1e-4))
    assert (d["filters"], d["kernel_sizes"], d["pooling"], d["dropout"]) == (256, "3,4,5", "mean", 0.2)
