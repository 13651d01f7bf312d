"""What `convtune search` may change: parameters, their ranges, and the defaults they start from.

A space is a list of `Param`s. Each names the train option it sets (`option`; the parameter's
own name differs only where one option has two ranges, e.g. SGD's learning rate `sgd_lr` and
AdamW's `lr`), and may apply only `when` another parameter has given values (define-by-run:
momentum exists only for SGD). Every parameter has the value `convtune train` would use
(`default`), so the first trial of a new study is the default recipe and the search reports
how far it got beyond it.

A space file (YAML) replaces the default space:

    lr:        {type: float, low: 1.0e-5, high: 3.0e-4, log: true}
    filters:   {type: categorical, choices: [64, 128, 256]}
    epochs:    {type: int, low: 2, high: 6}
    momentum:  {type: float, low: 0.8, high: 0.95, when: {optimizer: [sgd]}}
    sgd_lr:    {type: float, low: 1.0e-3, high: 3.0e-2, log: true, option: lr, when: {optimizer: [sgd]}}
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from convtune.config import ADAPTER_MODES, HEAD_LR, SGD_HEAD_LR, SGD_LR, TrainConfig
from convtune.errors import ConvtuneError

# The train options a search may set (each is a `convtune train` option of the same name).
SEARCHABLE = ("lr", "head_lr", "optimizer", "momentum", "weight_decay", "warmup_ratio", "epochs", "batch_size",
              "label_smoothing", "dropout", "filters", "kernel_sizes", "pooling", "lora_r", "lora_alpha",
              "lora_dropout", "max_length")
KINDS = ("float", "int", "categorical")


@dataclass
class Param:
    """One searched parameter: a float / int range (optionally log-scaled) or a list of choices."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list | None = None
    default: object = None
    option: str = ""                                   # the train option it sets (default: name)
    when: dict[str, list] = field(default_factory=dict)  # only when these parameters have these values

    def __post_init__(self):
        self.option = self.option or self.name
        where = f"search space: {self.name}"
        if self.option not in SEARCHABLE:
            raise ConvtuneError(f"{where}: {self.option!r} is not a searchable option ({', '.join(SEARCHABLE)})")
        if self.kind not in KINDS:
            raise ConvtuneError(f"{where}: type must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.kind == "categorical":
            if not isinstance(self.choices, list) or not self.choices:
                raise ConvtuneError(f"{where}: a categorical parameter needs a non-empty list of choices")
        elif not (isinstance(self.low, int | float) and isinstance(self.high, int | float) and self.low <= self.high):
            raise ConvtuneError(f"{where}: needs numbers low <= high, not {self.low!r} and {self.high!r}")
        elif self.log and self.low <= 0:
            raise ConvtuneError(f"{where}: a log range needs low > 0")
        if not isinstance(self.when, dict) or not all(isinstance(v, list) for v in self.when.values()):
            raise ConvtuneError(f"{where}: when wants a mapping of parameter names to lists of values")

    def suggest(self, trial):
        """Optuna's suggestion for this parameter in `trial`."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, self.choices)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)

    def describe(self) -> str:
        if self.kind == "categorical":
            text = "one of " + ", ".join(map(str, self.choices))
        else:
            text = f"{self.kind} {self.low:g} .. {self.high:g}" + (" (log)" if self.log else "")
        when = "; ".join(f"{k} in {', '.join(map(str, v))}" for k, v in self.when.items())
        return text + (f" when {when}" if when else "")


def sample(space: list[Param], trial) -> dict:
    """{option: value} for one trial: the parameters whose conditions hold, in space order."""
    chosen, options = {}, {}
    for p in space:
        if all(chosen.get(k) in v for k, v in p.when.items()):
            chosen[p.name] = options[p.option] = p.suggest(trial)
    return options


def defaults(space: list[Param]) -> dict:
    """{parameter: default} of the active parameters: what `convtune train` would use."""
    chosen = {}
    for p in space:
        if all(chosen.get(k) in v for k, v in p.when.items()):
            chosen[p.name] = p.default
    return chosen


def declared(config, mode: str) -> list[Param]:
    """The parameters a config dataclass declares searchable (fields with `search` metadata:
    choices, or low / high; `modes` where only those modes have it), starting from its defaults."""
    space = []
    for f in fields(config):
        s = f.metadata.get("search")
        if s is None or mode not in s.get("modes", (mode,)):
            continue
        name, default = f.metadata.get("dest", f.name), getattr(config, f.name)
        if isinstance(default, list):  # widths: searched as the command line spells them
            default = ",".join(map(str, default))
        if "choices" in s:
            space.append(Param(name, "categorical", choices=list(s["choices"]), default=default))
        else:
            kind = "int" if isinstance(default, int) and not isinstance(default, bool) else "float"
            space.append(Param(name, kind, s["low"], s["high"], log=s.get("log", False), default=default))
    return space


def searchable_heads() -> tuple[str, ...]:
    """The heads with a default search space: those whose config declares searchable fields."""
    from convtune.modeling import heads

    return tuple(name for name, (_, config) in heads.HEADS.items()
                 if any("search" in f.metadata for f in fields(config)))


def default_space(mode: str, head: str, encoder_lr: float) -> list[Param]:
    """The space searched unless a file replaces it. Ranges around the documented recipes
    (docs/tuning.md); `encoder_lr` is this encoder's / mode's default AdamW rate. Every default
    is read from the dataclass that declares it (train's, the head's, the adapter's), so trial 0
    is `convtune train`'s recipe whatever those defaults become."""
    from convtune.modeling import heads, settings  # torch: only when a search runs

    t = TrainConfig()
    sgd = {"optimizer": ["sgd"]}
    adamw = {"optimizer": ["adamw"]}
    space = [Param("optimizer", "categorical", choices=["adamw", "sgd"], default=t.optimizer)]
    if mode != "frozen":
        low, high = (1e-4, 3e-3) if mode in ADAPTER_MODES else (1e-5, 3e-4)
        space += [Param("lr", "float", low, high, log=True, default=encoder_lr, when=adamw),
                  Param("sgd_lr", "float", 1e-3, 3e-2, log=True, default=SGD_LR, option="lr", when=sgd)]
    space += [Param("head_lr", "float", 1e-4, 1e-2, log=True, default=HEAD_LR, when=adamw),
              Param("sgd_head_lr", "float", 3e-3, 1e-1, log=True, default=SGD_HEAD_LR, option="head_lr", when=sgd),
              Param("momentum", "float", 0.8, 0.95, default=t.momentum, when=sgd),
              Param("weight_decay", "float", 0.0, 0.1, default=t.weight_decay),
              Param("warmup_ratio", "float", 0.0, 0.2, default=t.warmup_ratio),
              Param("epochs", "int", *((5, 20) if mode == "frozen" else (2, 6)), default=t.epochs)]
    space += declared(heads.HEADS[head][1](), mode)  # the head's own fragment
    if mode in ADAPTER_MODES:
        space += declared(settings.AdapterConfig(method=mode), mode)
    for p in space:  # a default outside its range would make trial 0 another recipe than train's
        if p.choices is not None and p.default not in p.choices:
            p.choices = sorted({*p.choices, p.default}, key=str)
    return space


def read_space(path: str | Path) -> list[Param]:
    """A space file (YAML: name -> {type, low, high, log, choices, option, when})."""
    import yaml

    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConvtuneError(f"--space {p}: no such file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConvtuneError(f"--space {p}: not valid YAML ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(raw, dict) or not raw:
        raise ConvtuneError(f"--space {p}: wants a mapping of parameter names to ranges, e.g. "
                            "lr: {type: float, low: 1.0e-5, high: 3.0e-4, log: true}")
    space = []
    for name, spec in raw.items():
        if not isinstance(spec, dict):
            raise ConvtuneError(f"--space {p}: {name} wants a mapping (type, low, high / choices)")
        unknown = set(spec) - {"type", "low", "high", "log", "choices", "option", "when", "default"}
        if unknown:
            raise ConvtuneError(f"--space {p}: {name} has unknown keys {', '.join(sorted(unknown))}")
        space.append(Param(str(name), spec.get("type", ""), spec.get("low"), spec.get("high"), bool(spec.get("log")),
                           spec.get("choices"), spec.get("default"), spec.get("option", ""), spec.get("when") or {}))
    return space


def without(space: list[Param], fixed: dict) -> list[Param]:
    """The space minus the options fixed on the command line ({option: value}); a parameter
    that depends on a fixed one stays if the fixed value meets its condition (`--optimizer sgd`
    keeps SGD's rates and momentum, drops AdamW's)."""
    kept = []
    for p in space:
        if p.option in fixed:
            continue
        if any(k in fixed and fixed[k] not in v for k, v in p.when.items()):
            continue
        kept.append(Param(p.name, p.kind, p.low, p.high, p.log, p.choices, p.default, p.option,
                          {k: v for k, v in p.when.items() if k not in fixed}))
    names = {p.name for p in kept}
    return [p for p in kept if all(k in names for k in p.when)]
