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

import os
import random
import shutil
import socket
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from convtune._fs import pid_alive, remove_stale_partials, write_json
from convtune.data.splits import Splits
from convtune.errors import ConvtuneError, TrainingDiverged
from convtune.estimators.registry import load, make_estimator
from convtune.experiments.plots import plot_confusion_of
from convtune.experiments.runs import eval_name, train_run
from convtune.experiments.search_space import Param, defaults, sample
from convtune.training.callbacks import Callback, TrainState

PRUNERS = ("median", "hyperband", "none")


@dataclass
class SearchSettings:
    """The search's own options (the train options it fixes travel in `build`)."""

    trials: int = 20
    timeout: float | None = None      # seconds: no trial starts after this (a running one finishes)
    storage: str | None = None        # None: OUT/study.db (OUT/journal.log with workers); URL; "journal"
    study: str | None = None          # default: DATA-HEAD-MODE
    workers: int = 1
    pruner: str = "median"
    seed: int = 42                    # the sampler's (training seeds are the train option --seed)
    track: str = "none"               # each trial a tracked run (experiments.tracking), in OUT/tracking

    def __post_init__(self):
        if not isinstance(self.trials, int) or self.trials < 1:
            raise ConvtuneError(f"--trials must be a whole number >= 1, not {self.trials!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ConvtuneError(f"--timeout must be a number of seconds > 0, not {self.timeout!r}")
        if self.pruner not in PRUNERS:
            raise ConvtuneError(f"--pruner must be one of {', '.join(PRUNERS)}, not {self.pruner!r}")


# ------------------------------------------------------------------------------------ storage

def check_out(out: Path, settings: SearchSettings) -> None:
    """Refuse an --out that holds something other than a search (`--out .` would be littered)."""
    ours = ("study.db", "journal.log", "results.json", "trials", "best")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not any((out / n).exists() for n in ours))):
        raise ConvtuneError(f"{out} exists and is not a convtune search directory; choose another --out")


def storage_spec(settings: SearchSettings, out: Path) -> str:
    """The storage URL: the user's, or SQLite in OUT (one worker) / a journal file (several:
    SQLite locks under parallel writers, optuna #820). An existing file in OUT wins, so a rerun
    with another --workers continues the same study."""
    if settings.storage and settings.storage != "journal":
        return settings.storage
    db, journal = out / "study.db", out / "journal.log"
    if settings.storage == "journal" or journal.exists() or (settings.workers > 1 and not db.exists()):
        return f"journal:{journal}"
    return f"sqlite:///{db}"


def open_storage(spec: str):
    """An Optuna storage for `spec` (sqlite:///..., postgresql://..., journal:PATH)."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend

    if spec.startswith("journal:"):
        return JournalStorage(JournalFileBackend(spec.removeprefix("journal:")))
    if "://" not in spec:
        raise ConvtuneError(f"--storage wants a database URL (sqlite:///PATH, postgresql://...) or journal, not {spec!r}")
    with warnings.catch_warnings():  # "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        heartbeat = {} if spec.startswith("sqlite") else dict(  # other machines' dead workers: retried once
            heartbeat_interval=30, grace_period=120, heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(1))
        for attempt in range(4):
            try:
                return RDBStorage(spec, engine_kwargs={"pool_pre_ping": True}, **heartbeat)
            except ImportError as e:
                raise ConvtuneError(f"--storage {spec.split(':')[0]}: a driver is missing ({e}); for PostgreSQL: "
                                    "pip install 'psycopg[binary]' and use postgresql+psycopg://") from None
            except Exception as e:  # sqlalchemy's errors: server down, wrong password, or (below) a race
                # Workers that start together on an empty database both create Optuna's tables and
                # one loses ("duplicate key ... pg_type_typname_nsp_index"); a moment later they exist.
                if attempt < 3:
                    time.sleep(0.5 + random.random())
                    continue
                first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
                raise ConvtuneError(f"--storage: cannot open the study database ({first})") from None


def open_study(settings: SearchSettings, out: Path, name: str, space: list[Param], about: dict):
    """The study (created, or loaded to continue); a new one gets the default recipe as trial 0."""
    import optuna

    spec = storage_spec(settings, out)
    storage, shared = open_storage(spec), "://" in spec and not spec.startswith("sqlite")
    name, pruner = settings.study or name, _pruner(settings.pruner, space)
    try:  # creation is atomic in every storage: only the process that created the study seeds it
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize", pruner=pruner)
    except optuna.exceptions.DuplicatedStudyError:
        return _with_sampler(optuna.load_study(study_name=name, storage=storage, pruner=pruner), settings, shared)
    for key, value in about.items():
        study.set_user_attr(key, value)
    start = defaults(space)
    if all(v is not None for v in start.values()):
        study.enqueue_trial(start, user_attrs={"default": True})
    return _with_sampler(study, settings, shared)


def _with_sampler(study, settings: SearchSettings, shared: bool):
    import optuna

    # A fresh random stream for each run of the command (the same seed would repeat trial 1's
    # parameters after a resume) and for each worker: local ones are numbered; independent ones
    # on a shared database (other machines) cannot agree on numbers, so their pid joins in.
    worker = int(os.environ.get("CONVTUNE_WORKER", "0"))
    seed = settings.seed + len(study.trials) + 1000 * worker + (os.getpid() * 7919 if shared else 0)
    study.sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, settings.trials // 2)))
    return study


def _pruner(kind: str, space: list[Param]):
    import optuna

    if kind == "median":  # prune below the median of earlier trials at the same epoch, from epoch 2
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if kind == "hyperband":
        epochs = next((p for p in space if p.option == "epochs"), None)
        top = int(epochs.high) if epochs is not None and epochs.kind == "int" else "auto"
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=top, reduction_factor=3)
    return optuna.pruners.NopPruner()


# --------------------------------------------------------------------------- dead trials

def process_id() -> str:
    """host:pid:start-time of this process (the start time tells a reused pid apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid())}"


def _start_ticks(pid: int) -> str:
    try:  # field 22 of /proc/PID/stat, after the parenthesised command name
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def _dead(worker: str) -> bool:
    """Whether the process that ran a trial is gone (only this machine's can be checked here)."""
    host, pid, ticks = (worker.split(":") + ["", "", ""])[:3]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's: Optuna's heartbeat decides (RDB storages)
    if ticks == "?":  # no /proc here: the pid alone
        return not pid_alive(int(pid))
    return _start_ticks(int(pid)) != ticks


def recover(study, out: Path) -> list[int]:
    """Mark this machine's RUNNING trials whose process is gone as failed (and delete the half-
    written model it left), and enqueue every failed trial's parameters once more (not a
    diverged one's: it would diverge again). Returns the numbers of the trials retried."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage, retried = study._storage, []
    trials = study.get_trials(deepcopy=False)
    for t in trials:
        if t.state == TrialState.RUNNING and _dead(t.user_attrs.get("worker", "")):
            try:
                storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            except UpdateFinishedTrialError:  # another worker got there first
                continue
            remove_stale_partials(trial_dir(out, t.number))
    done = {t.user_attrs.get("retry_of") for t in trials}
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if t.number not in done and "retry_of" not in t.user_attrs and not t.user_attrs.get("diverged"):
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number, **({"default": True}
                                                                               if t.user_attrs.get("default") else {})})
            retried.append(t.number)
    return retried


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


def trial_dir(out: Path, number: int) -> Path:
    return out / "trials" / f"trial-{number:04d}"


def make_objective(splits: Splits, build, space: list[Param], out: Path, track: str = "none"):
    """The function Optuna calls per trial: train on train, score on dev (test is held back)."""
    search_splits = replace(splits, test=None)

    def objective(trial) -> float:
        trial.set_user_attr("worker", process_id())
        options = sample(space, trial)
        clf = build(options)
        try:
            m = train_run(search_splits, clf, trial_dir(out, trial.number), overwrite=True,
                          callbacks=(PruneOnDev(trial),), track=track,
                          track_dir=out / "tracking" / f"trial-{trial.number:04d}")
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
        finished = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        for d in (out / "trials").glob("trial-*"):
            number = int(d.name.split("-")[1]) if d.name.split("-")[1].isdigit() else -1
            if number in finished and number != best:
                shutil.rmtree(d, ignore_errors=True)
    return callback


def counts(study) -> dict:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    return {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}


def run_trials(study, objective, settings: SearchSettings, out: Path, quota: int | None = None,
               deadline: float | None = None) -> int:
    """Run trials one at a time until the study has `settings.trials` finished (or running)
    trials, `quota` ran here, or `deadline` (time.time()) passed. Returns how many ran."""
    ran, callback = 0, keep_best_only(out)
    while quota is None or ran < quota:
        c = counts(study)
        if c["complete"] + c["pruned"] + c["running"] >= settings.trials or (deadline and time.time() >= deadline):
            break
        # A diverged trial (NaN loss: a learning rate too high) is a finished, failed trial; the
        # search goes on. Any other error stops this worker with its one-line message.
        study.optimize(objective, n_trials=1, catch=(TrainingDiverged,), callbacks=[callback])
        ran += 1
    return ran


def quotas(study, settings: SearchSettings) -> list[int]:
    """How many trials each local worker runs: the remaining ones, shared out."""
    c = counts(study)
    left = max(0, settings.trials - c["complete"] - c["pruned"] - c["running"])
    return [left // settings.workers + (1 if i < left % settings.workers else 0) for i in range(settings.workers)]


# --------------------------------------------------------------------------- the end

def install_best(out: Path, study) -> Path | None:
    """OUT/best: the best trial's run directory (moved from OUT/trials; replaced when a
    continued study finds a better one). None when another worker ran that trial: its model is
    in that worker's --out (on its machine)."""
    import json

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
    import json

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
    deadline = time.time() + settings.timeout if settings.timeout else None
    objective = make_objective(splits, build, space, out, settings.track)
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
    best_dir = install_best(out, study)
    best = next(r for r in trial_rows(study) if r["number"] == study.best_trial.number)
    best["worker"] = study.best_trial.user_attrs.get("worker")
    res = {"about": about, "study": study.study_name, "storage": storage_spec(settings, out), "pruner": settings.pruner,
           "budget": {"trials": settings.trials, "timeout": settings.timeout}, "counts": counts(study),
           "retried": retried, "seconds": round(time.perf_counter() - start, 1), "best_dir": best_dir and str(best_dir),
           "best": best, "test": best_dir and test_best(best_dir, splits), "baseline": baseline(splits, settings.seed),
           "space": [{"name": p.name, "range": p.describe(), "default": p.default} for p in space],
           "trials": trial_rows(study)}
    write_report(res, study, out)
    return res


def spawn_workers(argv: list[str], shares: list[int]) -> None:
    """`--workers K`: K processes of this command (each with its share of trials and of the
    cores) on the same study; waits for all; one line names any that failed."""
    import subprocess
    import sys

    from convtune.runtime import usable_cores

    threads = max(1, usable_cores() // max(1, len(shares)))
    procs = [subprocess.Popen([sys.executable, "-m", "convtune", "search", *argv, "--worker-quota", str(q)],
                              env=dict(os.environ, CONVTUNE_WORKER=str(i), CONVTUNE_THREADS=str(threads)))
             for i, q in enumerate(shares) if q > 0]
    failed = [i for i, p in enumerate(procs) if p.wait() != 0]
    if failed:
        raise ConvtuneError(f"search worker(s) {', '.join(map(str, failed))} failed (their errors are above); "
                            "rerun the same command to continue the study")
