"""Command-line options made from dataclass fields (the approach of Hugging Face's
`HfArgumentParser` and litgpt): a field made with `config.option(default, help, ...)` is one
option of every verb that takes its dataclass, so its flag, type, range, choices, default and
help are declared once. Building options imports nothing heavy.

Metadata a field may carry besides its help: `flag` (when the spelling is not --field-name),
`dest` (the keyword the option sets, when it is not the field's name), `type` (a parser from
the command line's string), `choices` (or a function giving them), `metavar`, `low` / `high`
(a range, checked by argparse) with `wants` (how the range is said), `cli_default` (the default
the help states when the field's own is None, resolved later: max length, long-text rule), `positional`, `nargs`, `const`, `hidden` (accepted, not listed in
--help), `required`.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields

from convtune.cli.argtypes import number_arg, whole_number_arg
from convtune.errors import ConvtuneError

_PLAIN = {"int": int, "float": float, "str": str}


def _shown(value) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _parser(parse):
    """A field's own parser as an argparse type: its one-line error becomes argparse's."""
    def typed(s: str):
        try:
            return parse(s)
        except ConvtuneError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return typed


def _type(f, meta: dict):
    if "type" in meta:
        return _parser(meta["type"])
    base = str(f.type).replace(" | None", "")
    low, high = meta.get("low"), meta.get("high")
    if low is not None or high is not None:
        wants = meta.get("wants") or (f"a whole number >= {low}" if high is None else
                                      f"a whole number from {low} to {high}")
        return whole_number_arg(low, high, wants) if base == "int" else number_arg(low, high, meta.get("wants"))
    return _PLAIN.get(base, str)


def add_fields(g, cls: type, *, only: tuple[str, ...] | None = None, unset: bool = False,
               notes: dict | None = None, required: tuple[str, ...] = ()) -> None:
    """One option per field of `cls` that has help metadata (those named in `only`, in `only`'s
    order). `unset`: every default is None, so that a model's own defaults apply to what is not
    given, and the help says the default. `notes`: field -> a note on another default (TextCNN's).
    `required`: fields this verb cannot do without."""
    by_name = {f.name: f for f in fields(cls) if "help" in f.metadata}
    for name in only or tuple(by_name):
        f = by_name[name]
        meta = dict(f.metadata)
        default = f.default_factory() if f.default_factory is not MISSING else (
            None if f.default is MISSING else f.default)
        text = _help(meta, name, default, unset, notes)
        flags = [meta.get("flag", "--" + f.name.replace("_", "-"))]
        kwargs = {"help": argparse.SUPPRESS if meta.get("hidden") else text.replace("%", "%%")}
        if meta.get("positional"):
            g.add_argument(f.name, nargs=meta.get("nargs"), choices=meta.get("choices"), help=kwargs["help"],
                           **({"metavar": meta["metavar"]} if "metavar" in meta else {}))
            continue
        if str(f.type) == "bool":
            kwargs.update(action="store_const", const=True, default=None if unset else False)
        else:
            kwargs.update(type=_type(f, meta), default=None if unset else default)
            for key in ("choices", "metavar", "nargs", "const"):
                if key in meta:  # choices may be a function: names registered at run time (heads)
                    kwargs[key] = meta[key]() if callable(meta[key]) else meta[key]
        if name in required or meta.get("required"):
            kwargs["required"] = True
        g.add_argument(*flags, dest=meta.get("dest", f.name), **kwargs)


def _help(meta: dict, name: str, default, unset: bool, notes: dict | None) -> str:
    """The field's help; an option whose default is left to the model (`unset`, or a
    `cli_default`) says the default, and TextCNN's where it differs."""
    shown = meta.get("cli_default", default)
    if shown is None or not (unset or "cli_default" in meta):
        return meta["help"]
    note = f"; textcnn: {_shown(notes[name])}" if notes and name in notes and notes[name] != shown else ""
    return f"{meta['help']} (default {_shown(shown)}{note})"
