"""Command line: thin verbs that parse, build a config and call the library.

    convtune train --data sms_spam --out runs/sms
    convtune evaluate runs/sms --data sms_spam
    convtune predict runs/sms "WIN a FREE phone now!!!"
    convtune export runs/sms --int8 && convtune serve runs/sms-onnx-int8
    convtune datasets | convtune encoders

    torchrun --nproc-per-node 2 -m convtune train ...   (or convtune train --nproc 2 ...)

Heavy libraries (torch, transformers) are imported inside the verbs that need them.
Expected failures print one `error:` line and exit with status 2 (under torchrun: one line
per rank, the others' prefixed with their rank).
"""

from __future__ import annotations

import contextlib
import os
import sys

from convtune.cli.options import COMPUTING_VERBS, parser
from convtune.cli.verbs import VERBS
from convtune.errors import ConvtuneError

DISTRIBUTED_VERBS = ("train", "predict")


def _parse(argv: list[str]):
    """argparse, with texts after options allowed for the verbs that take texts
    (`convtune explain DIR --top 3 "a text"`): argparse stops filling a positional list at the
    first option."""
    p = parser()
    args, extra = p.parse_known_args(argv)
    if extra and isinstance(getattr(args, "texts", None), list) and not any(x.startswith("-") for x in extra):
        args.texts += extra
    elif extra:
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _import_plugins() -> None:
    """CONVTUNE_PLUGINS=module[,module]: modules imported before the options are made, so that the
    heads they register (modeling.heads.register_head) are --head choices and load from disk."""
    import importlib

    for name in filter(None, (m.strip() for m in os.environ.get("CONVTUNE_PLUGINS", "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ConvtuneError(f"CONVTUNE_PLUGINS: cannot import {name!r} ({e})") from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        _import_plugins()
    except ConvtuneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args = _parse(argv)
    args.argv = argv  # `search --workers` reruns it in child processes
    prefix = _rank_prefix()
    try:
        if getattr(args, "nproc", None) and args.nproc > 1:
            return _launch(args.nproc, argv)
        if args.verb in COMPUTING_VERBS:
            from convtune.runtime import claim_threads

            claim_threads(args.threads)
        with _process_group(args):
            return VERBS[args.verb](args)
    except ConvtuneError as e:
        print(f"error: {prefix}{e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        if not prefix and not _launched():
            raise
        # A peer died or hung: gloo / NCCL say so in a RuntimeError. One line, not a traceback.
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"error: {prefix}lost contact with the other processes ({first[:300]}); the run stopped "
              "and wrote no finished output", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, permission denied ...: one line, not a traceback
        print(f"error: {e.strerror or e}{f': {e.filename}' if e.filename else ''}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: {_interrupted(args)}", file=sys.stderr)
        return 130


def _interrupted(args) -> str:
    """What an interruption left, and what rerunning the same command does, for this verb."""
    if args.verb == "predict" and getattr(args, "output", None):
        return f"{args.output} was not written; rerun the same command to resume where it stopped"
    return {"predict": "the predictions above are complete; the rest were not made",
            "search": "the study keeps its finished trials; rerun the same command to continue it",
            "train": f"{getattr(args, 'out', 'the run')} was not written; rerunning the command trains from the start",
            "serve": "the server stopped"}.get(args.verb, "no finished output was written; rerun the command to "
                                                          "start over")



def _launched() -> bool:
    # distributed.launched(), without importing torch: `convtune datasets` must start fast.
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def _rank_prefix() -> str:
    rank = os.environ.get("RANK", "0")
    return f"rank {rank}: " if _launched() and rank != "0" else ""


@contextlib.contextmanager
def _process_group(args):
    """Under torchrun: join the process group (train, predict) for the verb's duration."""
    if not _launched():
        yield
        return
    if args.verb not in DISTRIBUTED_VERBS:
        raise ConvtuneError(f"{args.verb} runs in one process; under torchrun only {' and '.join(DISTRIBUTED_VERBS)} do")
    from convtune import distributed

    args.device = distributed.init(args.device or "auto")
    try:
        yield
    finally:
        distributed.shutdown()


def _launch(nproc: int, argv: list[str]) -> int:
    """`--nproc N`: the same command under torchrun on this machine (a free port of its own)."""
    import subprocess

    rest, skip = [], False
    for x in argv:  # drop --nproc N / --nproc=N; torchrun's ranks run the rest
        if skip:
            skip = False
        elif x == "--nproc":
            skip = True
        elif not x.startswith("--nproc="):
            rest.append(x)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "-m", "convtune", *rest]
    from convtune.runtime import usable_cores  # torch: torchrun imports it anyway

    # torchrun warns unless OMP_NUM_THREADS is set; each rank sets its share of the cores anyway.
    env = {"OMP_NUM_THREADS": str(max(1, usable_cores() // nproc))} | dict(os.environ)
    return subprocess.run(cmd, env=env).returncode
