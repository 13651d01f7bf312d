"""The study behind `convtune search`: its settings, storage, sampler and pruner, and the
recovery of trials whose process died (see experiments/search.py for the whole picture)."""

from __future__ import annotations

import json
import os
import random
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from convtune._fs import pid_alive, remove_stale_partials
from convtune.config import option
from convtune.errors import ConvtuneError
from convtune.experiments.search_space import Param, defaults

PRUNERS = ("median", "hyperband", "none")
WORKERS_HELP = ("processes on this machine, sharing its cores (search: each runs its share of the trials; serve: each holds its own model copy)")  # serve's --workers says the same


@dataclass
class SearchSettings:
    """The search's own options (the train options it fixes travel in `build`)."""

    trials: int = option(20, "finished trials the study should have (rerunning the command continues it)", low=1)
    timeout: float | None = option(None, "seconds after which no new trial starts", low=0)
    storage: str | None = option(None, "sqlite:///PATH, postgresql+psycopg://..., or journal (default: OUT/study.db; "
                                       "OUT/journal.log with --workers)")
    study: str | None = option(None, "study name (default DATA-HEAD-MODE)")
    workers: int = option(1, WORKERS_HELP, low=1)
    pruner: str = option("median", "stop poor trials early on their per-epoch dev macro-F1", choices=PRUNERS)
    seed: int = option(42, "the sampler's seed (training seeds are --seed)", flag="--search-seed", dest="search_seed", low=0,
                       high=2**32 - 1, wants="a whole number from 0 to 4294967295")
    track: str = "none"               # each trial a tracked run (experiments.tracking), in OUT/tracking
    space: str | None = option(None, "YAML search space (default: the mode's own; docs/search.md)")
    worker_quota: int | None = option(None, "a --workers child's share of the trials", low=1, hidden=True)

    def __post_init__(self):
        if not isinstance(self.trials, int) or self.trials < 1:
            raise ConvtuneError(f"--trials must be a whole number >= 1, not {self.trials!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ConvtuneError(f"--timeout must be a number of seconds > 0, not {self.timeout!r}")
        if self.pruner not in PRUNERS:
            raise ConvtuneError(f"--pruner must be one of {', '.join(PRUNERS)}, not {self.pruner!r}")


# ------------------------------------------------------------------------------------ storage

SEARCH_MARK = "convtune-search.json"  # written by the search into its --out: what makes it one


def check_out(out: Path, overwrite: bool = False) -> None:
    """Refuse an --out that holds something other than a search (a folder of the user's would
    have its best/, trials/, results.json and reports replaced), unless `overwrite`."""
    if out.exists() and not out.is_dir():
        raise ConvtuneError(f"{out} is a file; --out names the search folder")
    if out.is_dir() and any(out.iterdir()) and not (out / SEARCH_MARK).is_file() and not overwrite:
        raise ConvtuneError(f"{out} is not empty and is not a convtune search folder (no {SEARCH_MARK}); choose "
                            "another --out, or pass --overwrite to let the search replace its best/, trials/, "
                            "results.json and report files")


def mark_search(out: Path, study_name: str) -> None:
    """Make `out` a search folder (its marker), once; a rerun finds it and continues."""
    mark = out / SEARCH_MARK
    if not mark.is_file():
        tmp = out / f".{SEARCH_MARK}.{os.getpid()}"
        tmp.write_text(json.dumps({"study": study_name}) + "\n", encoding="utf-8")
        tmp.replace(mark)


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

    if kind == "median":  # below the median of earlier trials at the same epoch (from epoch 1: step >= 1)
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
    # A surplus trial (search.BudgetReached) never ran: not retried, and an enqueued retry it
    # took from the queue is owed still.
    done = {t.user_attrs.get("retry_of") for t in trials if not t.user_attrs.get("surplus")}
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        a = t.user_attrs
        if not (t.number in done or "retry_of" in a or a.get("diverged") or a.get("surplus")):
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number, **({"default": True}
                                                                               if a.get("default") else {})})
            retried.append(t.number)
    return retried


def trial_dir(out: Path, number: int) -> Path:
    return out / "trials" / f"trial-{number:04d}"
