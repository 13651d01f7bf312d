"""Experiment tracking: `--track tensorboard|mlflow|wandb`, all offline.

A tracker is a training callback (step loss and learning rates, each epoch's dev metrics) with
two more calls, the metric-logger protocol:

    start(name, directory, root)      before training; `directory` is the run's own folder,
                                      `root` where stores shared by runs live (MLflow's)
    ... on_step / on_epoch_end ...    from the training loop (main process only)
    finish(metrics, files)            after evaluation: the hyper-parameters (metrics'
                                      "hyperparameters", defaults resolved), final metrics, the
                                      confusion matrix as an image, the model files in `files`

    tensorboard  event files in DIRECTORY/tensorboard: one run, hparams included (written by the
                 run's own writer, not add_hparams' second run: pytorch #32651)
    mlflow       $MLFLOW_TRACKING_URI, else sqlite:///ROOT/mlflow.db (MLflow 3.13+ refuses the
                 plain file store); artifacts beside it in ROOT/mlartifacts/
    wandb        offline mode only (WANDB_MODE=offline): DIRECTORY/wandb/offline-run-*;
                 `wandb sync` uploads it later if the user wants
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from convtune.errors import ConvtuneError
from convtune.training.callbacks import Callback, TrainState

TRACKERS = ("none", "tensorboard", "mlflow", "wandb")
_MODULE = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
STEP_POINTS = 100  # step metrics logged about this many times an epoch (MLflow writes a row each)


def flat(d: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists and None as text (what every tracker takes)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= flat(v, key + ".")
        else:
            out[key] = v if isinstance(v, bool | int | float | str) else json.dumps(v)
    return out


def final_scalars(metrics: dict) -> dict:
    """The numbers of a run's final metrics: test/... and dev_best/... (the kept model's dev
    scores; dev/... are the per-epoch ones)."""
    return {f"{'dev_best' if part == 'dev' else part}/{k}": float(v) for part in ("dev", "test")
            for k, v in (metrics.get(part) or {}).items() if isinstance(v, int | float) and not isinstance(v, bool)}


class Tracker(Callback):
    """Base class: the protocol above; subclasses write to one library."""

    step = 0            # the last optimizer step logged (final metrics are logged at it)
    finished = False

    def start(self, name: str, directory: Path, root: Path) -> None:
        raise NotImplementedError

    def log(self, scalars: dict, step: int) -> None:
        raise NotImplementedError

    def write_final(self, metrics: dict, files: Path | None) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Training failed: close what start opened, marked as failed where the library can."""

    def finish(self, metrics: dict, files: Path | None) -> None:
        self.finished = True
        self.write_final(metrics, files)

    def abort_unless_finished(self) -> None:
        if not self.finished:
            try:
                self.abort()
            except Exception:  # the training error is the one to report
                pass

    def on_step(self, state: TrainState) -> None:
        if state.is_main and state.step % max(1, state.steps_per_epoch // STEP_POINTS) == 0:
            self.step = state.step
            self.log({"train/loss": state.loss, **{f"train/lr_{k}": v for k, v in state.learning_rates.items()}},
                     state.step)

    def on_epoch_end(self, state: TrainState) -> None:
        if state.is_main:
            self.step = state.step
            self.log({"train/epoch_loss": state.train_loss, **{f"dev/{k}": v for k, v in state.dev.items()
                                                             if isinstance(v, int | float)}}, state.step)


class TensorBoardTracker(Tracker):
    def start(self, name: str, directory: Path, root: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(directory / "tensorboard"))

    def log(self, scalars: dict, step: int) -> None:
        for k, v in scalars.items():
            self.writer.add_scalar(k, v, step)

    def write_final(self, metrics: dict, files: Path | None) -> None:
        from torch.utils.tensorboard.summary import hparams

        final = final_scalars(metrics)
        for k, v in final.items():
            self.writer.add_scalar(k, v, self.step)
        # The hparams summary through this writer: the same run (add_hparams opens a second one).
        for summary in hparams(flat(metrics.get("hyperparameters") or {}),
                               {k: v for k, v in final.items() if k.startswith("test/")} or final):
            self.writer.file_writer.add_summary(summary)
        image = _confusion_png(files)
        if image is not None:
            import matplotlib.image

            self.writer.add_image("confusion_matrix", matplotlib.image.imread(image)[..., :3], self.step,
                                  dataformats="HWC")
        self.writer.close()

    def abort(self) -> None:
        self.writer.close()


class MLflowTracker(Tracker):
    def start(self, name: str, directory: Path, root: Path) -> None:
        import mlflow

        root = root.resolve()
        self.client = mlflow.MlflowClient(os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlflow.db'}")
        experiment = self.client.get_experiment_by_name("convtune")
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(
            "convtune", artifact_location=(root / "mlartifacts").as_uri())
        self.run_id = self.client.create_run(experiment_id, run_name=name).info.run_id

    def log(self, scalars: dict, step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in scalars.items()])

    def write_final(self, metrics: dict, files: Path | None) -> None:
        from mlflow.entities import Param

        params = [Param(k, str(v)[:6000]) for k, v in flat(metrics.get("hyperparameters") or {}).items()]
        self.client.log_batch(self.run_id, params=params)
        self.log(final_scalars(metrics), self.step)
        image = _confusion_png(files)
        if image is not None:
            self.client.log_artifact(self.run_id, str(image))
        if files is not None and (files / "convtune.json").is_file():  # the model itself
            self.client.log_artifacts(self.run_id, str(files), "model")
        self.client.set_terminated(self.run_id)

    def abort(self) -> None:
        self.client.set_terminated(self.run_id, status="FAILED")


class WandbTracker(Tracker):
    def start(self, name: str, directory: Path, root: Path) -> None:
        import wandb

        os.environ["WANDB_MODE"] = "offline"  # never the network, whatever the user's settings say
        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(project="convtune", name=name, dir=str(directory), mode="offline",
                              reinit="create_new")

    def log(self, scalars: dict, step: int) -> None:
        self.run.log(scalars, step=step)

    def write_final(self, metrics: dict, files: Path | None) -> None:
        import wandb

        self.run.config.update(flat(metrics.get("hyperparameters") or {}), allow_val_change=True)
        for k, v in final_scalars(metrics).items():
            self.run.summary[k] = v
        image = _confusion_png(files)
        if image is not None:
            self.run.summary["confusion_matrix"] = wandb.Image(str(image))
        self.run.finish()

    def abort(self) -> None:
        self.run.finish(exit_code=1)


def _confusion_png(files: Path | None) -> Path | None:
    if files is None:
        return None
    found = [p for p in (files / "confusion_matrix.png", files / "confusion_matrix_dev.png") if p.is_file()]
    return found[0] if found else None


def make_tracker(kind: str | None) -> Tracker | None:
    """The tracker for --track (None for none); a missing library is one line with its extra."""
    if kind in (None, "none"):
        return None
    if kind not in TRACKERS:
        raise ConvtuneError(f"--track must be one of {', '.join(TRACKERS)}, not {kind!r}")
    if importlib.util.find_spec(_MODULE[kind]) is None:
        raise ConvtuneError(f"--track {kind} needs the {kind} library: pip install 'convtune[{kind}]'")
    return {"tensorboard": TensorBoardTracker, "mlflow": MLflowTracker, "wandb": WandbTracker}[kind]()
