"""`convtune search`: hyper-parameter search on Optuna, with studies that survive kill -9.

    study (storage: SQLite in OUT, a journal file for local workers, or an RDB URL)
      trial 0 = the default recipe (what `convtune train` does), then TPE's suggestions
      each trial: sample the space -> train_run on train / dev only -> OUT/trials/trial-NNNN
                  dev macro-F1 reported every epoch; the pruner may stop it (optuna.TrialPruned)
    finish: the best trial's directory becomes OUT/best (an ordinary run directory), evaluated
            on test once; the TF-IDF baseline beside it; report.md / report.html / results.json

`--trials N` counts finished trials (complete or pruned) of the whole study: rerunning the same
command continues it. A trial whose process died (kill -9, power cut) is still RUNNING in the
storage; the next run on this machine sees its process is gone, marks it failed and enqueues
its parameters again, once. Workers on other machines (RDB URL) are watched by Optuna's
heartbeat instead. Test data is never seen before `finish`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

from convtune._fs import write_json
from convtune.data.splits import Splits
from convtune.errors import ConvtuneError, TrainingDiverged
from convtune.estimators.registry import load, make_estimator
from convtune.experiments.plots import plot_confusion_of
from convtune.experiments.runs import eval_name, train_run
from convtune.experiments.search_space import Param, sample
from convtune.experiments.search_study import (SearchSettings, check_out, mark_search, open_study, process_id,
                                               recover, storage_spec, trial_dir)
from convtune.modeling.encoders import kept_encoders
from convtune.training.callbacks import Callback, TrainState

__all__ = ["SearchSettings", "check_out", "run_search"]

# --------------------------------------------------------------------------- trials

class PruneOnDev(Callback):
    """Reports each epoch's dev macro-F1 to the trial; raises TrialPruned when the pruner says so."""

    def __init__(self, trial):
        self.trial = trial

    def on_epoch_end(self, state: TrainState) -> None:
        import optuna

        self.trial.report(state.dev["macro_f1"], state.epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {state.epoch} (dev macro-F1 {state.dev['macro_f1']:.4f})")


MAX_FAILED_IN_A_ROW = 10  # trials that diverge one after another: the space, not bad luck


class BudgetReached(Exception):
    """A trial opened after the study's --trials were taken by trials numbered before it."""


def surplus(trial, budget: int) -> bool:
    """Whether `budget` trials numbered before this one are finished or running. Two workers
    that both saw one trial left may both open one; the storage numbers trials atomically, so
    the later number steps back and the study ends with exactly --trials."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return sum(t.number < trial.number for t in trial.study.get_trials(deepcopy=False, states=states)) >= budget


def make_objective(splits: Splits, build, space: list[Param], out: Path, track: str = "none",
                   budget: int | None = None):
    """The function Optuna calls per trial: train on train, score on dev (test is held back)."""
    search_splits = replace(splits, test=None)

    def objective(trial) -> float:
        trial.set_user_attr("worker", process_id())
        if budget is not None and surplus(trial, budget):  # ends failed and unrun; not counted
            trial.set_user_attr("surplus", True)
            raise BudgetReached(f"the study had its {budget} trials when trial {trial.number} opened")
        options = sample(space, trial)
        clf = build(options)
        try:
            m = train_run(search_splits, clf, trial_dir(out, trial.number), overwrite=True,
                          callbacks=(PruneOnDev(trial),), track=track,
                          track_dir=out / "tracking" / trial_dir(out, trial.number).name)
        except TrainingDiverged as e:
            trial.set_user_attr("diverged", str(e)[:200])
            raise
        for key in ("train_seconds", "cache_seconds", "wall_seconds", "best_epoch"):
            if m.get(key) is not None:
                trial.set_user_attr(key, m[key])
        trial.set_user_attr("epochs_run", len(m.get("history") or []))
        trial.set_user_attr("dev_accuracy", m["dev"].get("accuracy", m["dev"].get("subset_accuracy")))
        return m["dev"]["macro_f1"]
    return objective


def keep_best_only(out: Path):
    """A study callback: delete finished trials' directories except the best one's (each
    fine-tuned trial is a whole encoder, ~90 MB for MiniLM)."""
    def callback(study, trial) -> None:
        try:
            best = study.best_trial.number
        except ValueError:  # no complete trial yet
            return
        for t in study.get_trials(deepcopy=False):
            if t.state.is_finished() and t.number != best:
                shutil.rmtree(trial_dir(out, t.number), ignore_errors=True)  # gone already: nothing happens
    return callback


def counts(study) -> dict:
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("surplus")]
    return {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}


def _taken(c: dict) -> int:
    """Trials that count towards --trials: finished (complete, pruned) or running somewhere."""
    return c["complete"] + c["pruned"] + c["running"]


def run_trials(study, objective, settings: SearchSettings, out: Path, quota: int | None = None,
               deadline: float | None = None) -> int:
    """Run trials one at a time until the study has `settings.trials` finished (or running)
    trials, `quota` ran here, or `deadline` (time.time()) passed. Returns how many ran."""
    ran, failed, callback = 0, 0, keep_best_only(out)
    with kept_encoders(), _QuietTrials():  # the encoder is read from disk once, not once a trial
        while quota is None or ran < quota:
            before = counts(study)
            if _taken(before) >= settings.trials or (deadline and time.time() >= deadline):
                break
            # A diverged trial (NaN loss: a learning rate too high) is a finished, failed trial; the
            # search goes on. Any other error stops this worker with its one-line message.
            study.optimize(objective, n_trials=1, catch=(TrainingDiverged, BudgetReached), callbacks=[callback])
            ran += 1
            failed = failed + 1 if counts(study)["fail"] > before["fail"] else 0
            if failed >= MAX_FAILED_IN_A_ROW:  # failed trials do not count towards --trials: never loop on them
                raise ConvtuneError(f"{failed} trials in a row failed (see the messages above); the search stopped")
    return ran


class _QuietTrials(logging.Filter):
    """Optuna logs every failed trial with its traceback. A surplus trial is no failure and a
    Ctrl-C is the user's own (both dropped); a trial that failed with a ConvtuneError (a diverged
    loss, bad input) keeps its one-line message without the traceback. Any other error keeps
    Optuna's traceback: that is a bug, worth reading."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, BudgetReached | KeyboardInterrupt) or "failed with value None" in record.getMessage():
            return False
        if isinstance(error, ConvtuneError):
            record.exc_info, record.exc_text = None, None
        return True

    def __enter__(self):
        logging.getLogger("optuna.study._optimize").addFilter(self)

    def __exit__(self, *exc):
        logging.getLogger("optuna.study._optimize").removeFilter(self)


def quotas(study, settings: SearchSettings) -> list[int]:
    """How many trials each local worker runs: the remaining ones, shared out."""
    left = max(0, settings.trials - _taken(counts(study)))
    return [left // settings.workers + (1 if i < left % settings.workers else 0) for i in range(settings.workers)]


# --------------------------------------------------------------------------- the end

def install_best(out: Path, study) -> Path | None:
    """OUT/best: the best trial's run directory (moved from OUT/trials; replaced when a
    continued study finds a better one). None when another worker ran that trial: its model is
    in that worker's --out (on its machine)."""
    best, dest = study.best_trial, out / "best"
    marker = dest / "search_trial.json"
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")).get("trial") == best.number:
        return dest
    src = trial_dir(out, best.number)
    if not src.is_dir():  # another worker's trial (or a model deleted by hand): the report says so
        return None
    write_json(src / "search_trial.json", {"trial": best.number, "study": study.study_name, "params": best.params,
                                           "dev_macro_f1": best.value})
    old = out / ".best.old"
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    src.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest


def test_best(best_dir: Path, splits: Splits) -> dict | None:
    """Evaluate the best model on test (once per best trial), into its metrics.json."""
    if splits.test is None:
        return None
    path = best_dir / "metrics.json"
    metrics = json.loads(path.read_text(encoding="utf-8"))
    if "test" not in metrics:
        m = load(best_dir).evaluate(splits.test.texts, splits.test.labels)
        m.pop("report", None)
        metrics["test"] = m
        write_json(path, metrics)
        if not m.get("multi_label"):
            plot_confusion_of(m, best_dir / "confusion_matrix.png",
                              f"{splits.name} test: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}")
    return metrics["test"]


def baseline(splits: Splits, seed: int) -> dict:
    """TF-IDF + linear SVM on the same split: dev and test (seconds on any set)."""
    clf = make_estimator("tfidf-svm", seed=seed)
    clf.fit(splits.train.texts, splits.train.labels, splits.dev.texts, splits.dev.labels)
    out = {"dev": clf.evaluate(splits.dev.texts, splits.dev.labels)}
    if splits.test is not None:
        out["test"] = clf.evaluate(splits.test.texts, splits.test.labels)
    for m in out.values():
        m.pop("report", None)
    return out


def run_search(splits: Splits, build, space: list[Param], settings: SearchSettings, out: Path, about: dict,
               argv: list[str] | None = None, quota: int | None = None) -> dict | None:
    """The whole search: open (or continue) the study, run the trials here or in `--workers`
    child processes, then install, test and report the best. `build(options)` makes one trial's
    estimator; `argv` is the command line a child worker reruns; with `quota` this process is
    such a worker: it runs at most that many trials and leaves the end to its parent."""
    from convtune.experiments.search_report import trial_rows, write_report

    out.mkdir(parents=True, exist_ok=True)
    study = open_study(settings, out, f"{eval_name(about['data'])}-{about['head']}-{about['mode']}", space, about)
    mark_search(out, study.study_name)
    deadline = time.time() + settings.timeout if settings.timeout else None
    objective = make_objective(splits, build, space, out, settings.track, budget=settings.trials)
    if quota is not None:
        run_trials(study, objective, settings, out, quota, deadline)
        return None
    start, retried = time.perf_counter(), recover(study, out)
    if settings.workers > 1:
        spawn_workers(argv or [], quotas(study, settings))
    else:
        run_trials(study, objective, settings, out, None, deadline)
    if not counts(study)["complete"]:
        raise ConvtuneError(f"no trial of study {study.study_name!r} completed (see the errors above); nothing to report")
    best_dir, rows = install_best(out, study), trial_rows(study)
    best = dict(next(r for r in rows if r["number"] == study.best_trial.number))
    best["worker"] = study.best_trial.user_attrs.get("worker")
    res = {"about": about, "study": study.study_name, "storage": storage_spec(settings, out), "pruner": settings.pruner,
           "budget": {"trials": settings.trials, "timeout": settings.timeout}, "counts": counts(study),
           "retried": retried, "seconds_this_run": round(time.perf_counter() - start, 1),
           "best_dir": best_dir and str(best_dir),
           "best": best, "test": best_dir and test_best(best_dir, splits), "baseline": baseline(splits, settings.seed),
           "space": [{"name": p.name, "range": p.describe(), "default": p.default} for p in space],
           "trials": rows}
    write_report(res, study, out)
    return res


def spawn_workers(argv: list[str], shares: list[int]) -> None:
    """`--workers K`: K processes of this command (each with its share of trials and of the
    cores) on the same study; waits for all; one line names any that failed."""
    import subprocess
    import sys

    import torch

    threads = max(1, torch.get_num_threads() // max(1, len(shares)))  # this command's threads, shared out
    procs = [subprocess.Popen([sys.executable, "-m", "convtune", "search", *argv, "--worker-quota", str(q),
                               "--threads", str(threads)], env=dict(os.environ, CONVTUNE_WORKER=str(i)))
             for i, q in enumerate(shares) if q > 0]
    failed = [i for i, p in enumerate(procs) if p.wait() != 0]
    if failed:
        raise ConvtuneError(f"search worker(s) {', '.join(map(str, failed))} failed (their errors are above); "
                            "rerun the same command to continue the study")
