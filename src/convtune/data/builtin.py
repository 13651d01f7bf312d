"""Built-in data sets, read in place from a data directory, and the SPEC resolver.

The data directory is ``$CONVTUNE_DATA`` or ``../shared/data`` (relative to the working
directory). Each reader knows its set's format and traps (Latin-1 files, byte 0x85 inside
sentences, CRLF, HTML entities); `../shared/data/README.md` documents them.
"""

from __future__ import annotations

import csv
import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from convtune.data.multilabel import is_multi, label_set
from convtune.data.splits import Splits, make_splits
from convtune.data.texts import SINGLE, LabelRule, TextSet, read_table, read_text_file, split_lines
from convtune.errors import ConvtuneError
from convtune.paths import data_root

Reader = Callable[[Path], tuple[TextSet, TextSet | None, TextSet | None]]


def _label_space_lines(path: Path, encoding: str, names: dict[str, str] | None = None) -> TextSet:
    """``label<SPACE>text`` lines (SST-2 Kim splits, TREC, MR, SUBJ)."""
    texts, labels = [], []
    for line in split_lines(read_text_file(path, encoding)):
        if not line.strip():
            continue
        label, _, text = line.partition(" ")
        if text.strip():
            texts.append(text.strip())
            labels.append(names.get(label, label) if names else label)
    return TextSet(texts, labels)


def _tab_lines(path: Path, text_first: bool, names: dict[str, str] | None = None,
               clean: Callable[[str], str] = str.strip) -> TextSet:
    texts, labels = [], []
    for line in split_lines(read_text_file(path)):
        if not line.strip():
            continue
        a, _, b = line.partition("\t") if not text_first else line.rpartition("\t")
        text, label = (a, b) if text_first else (b, a)
        label = label.strip()
        texts.append(clean(text))
        labels.append(names.get(label, label) if names else label)
    return TextSet(texts, labels)


def _csv_label_review(path: Path, names: dict[str, str]) -> TextSet:
    rows = list(csv.DictReader(read_text_file(path).split("\n")))
    pairs = [(r["review"].strip(), names[r["label"]]) for r in rows if (r.get("review") or "").strip()]
    return TextSet([p[0] for p in pairs], [p[1] for p in pairs])


def _clean_ag(text: str) -> str:
    # AG News escapes: " #39;" for "'", "\" for a newline, plus ordinary HTML entities.
    text = re.sub(r"\s?#(\d+);", lambda m: chr(int(m.group(1))), text).replace("\\", " ")
    return " ".join(html.unescape(text).split())


SENTIMENT = {"0": "negative", "1": "positive"}
TREC = {"0": "DESC", "1": "ENTY", "2": "ABBR", "3": "HUM", "4": "LOC", "5": "NUM"}


def _sms(d):
    return _tab_lines(d / "SMSSpamCollection", text_first=False,
                      clean=lambda t: html.unescape(t).strip()), None, None


def _sst2(d):
    return tuple(_label_space_lines(d / f"stsa.binary.{s}", "utf-8", SENTIMENT)
                 for s in ("train", "dev", "test"))


def _sst2_glue(d):
    return tuple(read_table(d / f"{s}.tsv", "sentence", "label") for s in ("train", "dev", "test"))


def _glue_names(parts):
    return tuple(TextSet(p.texts, [SENTIMENT[y] for y in p.labels]) for p in parts)


def _trec(d):
    return (_label_space_lines(d / "TREC.train.all", "latin-1", TREC), None,
            _label_space_lines(d / "TREC.test.all", "latin-1", TREC))


def _mr(d):
    return _label_space_lines(d / "rt-polarity.all", "latin-1", SENTIMENT), None, None


def _subj(d):
    names = {"0": "subjective", "1": "objective"}
    return _label_space_lines(d / "subj.all", "latin-1", names), None, None


def _ag_news(d):
    classes = [c.strip() for c in split_lines(read_text_file(d / "classes.txt")) if c.strip()]
    train = _tab_lines(d / "train_subset_10k.tsv", text_first=True, clean=_clean_ag)
    rows = list(csv.reader(read_text_file(d / "test.csv").split("\n")))
    # The train subset has descriptions only, so the test set uses descriptions too.
    test = TextSet([_clean_ag(r[2]) for r in rows if r], [classes[int(r[0]) - 1] for r in rows if r])
    return train, None, test


def _financial(d, agree: str = "50"):
    texts, labels = [], []
    raw = read_text_file(d / f"Sentences_{agree}Agree.txt", "latin-1")
    for line in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        text, sep, label = line.rpartition("@")
        if sep and text.strip():
            texts.append(text.strip())
            labels.append(label.strip())
    return TextSet(texts, labels), None, None


def _thucnews(d):
    classes = [c.strip() for c in split_lines(read_text_file(d / "class.txt")) if c.strip()]
    names = {str(i): c for i, c in enumerate(classes)}
    return tuple(_tab_lines(d / f"{s}.txt", text_first=True, names=names) for s in ("train", "dev", "test"))


def _goemotions(d):
    """Official splits; the label cell holds comma-separated ids into labels.txt (27 = neutral)."""
    names = [c.strip() for c in split_lines(read_text_file(d / "labels.txt")) if c.strip()]
    parts = []
    for split in ("train", "dev", "test"):
        texts, labels = [], []
        for n, line in enumerate(split_lines(read_text_file(d / f"{split}.tsv")), 1):
            if line.strip():
                text, ids = line.split("\t")[:2]
                texts.append(text.strip())
                labels.append(label_set([names[int(i)] for i in ids.split(",")], f"{split}.tsv line {n}"))
        parts.append(TextSet(texts, labels))
    return tuple(parts)


def _latin1_fallback(raw: bytes) -> str:
    try:  # 73 of the 18,846 posts are Latin-1 (scikit-learn reads all of them as Latin-1)
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _newsgroups(d):
    """20 Newsgroups "bydate", read inside the tarball; headers stripped (they name the poster
    and the site, which leaks the label), as scikit-learn's remove=("headers",) does."""
    import tarfile

    parts = {"train": ([], []), "test": ([], [])}
    with tarfile.open(d / "20news-bydate.tar.gz") as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
        for m in members:
            split, group = m.name.split("/")[-3:-1]
            body = _latin1_fallback(tar.extractfile(m).read()).replace("\r\n", "\n").partition("\n\n")[2]
            if body.strip():  # 34 posts are empty without their headers
                texts, labels = parts[split.rsplit("-", 1)[-1]]
                texts.append(body.strip())
                labels.append(group)
    return TextSet(*parts["train"]), None, TextSet(*parts["test"])


def _reuters(d):
    """Reuters-21578 ApteMod (NLTK's layout, read inside the zip): 90 topics, several per text."""
    import zipfile

    with zipfile.ZipFile(d / "corpora" / "reuters.zip") as z:
        cats = {}
        for line in z.read("reuters/cats.txt").decode("latin-1").split("\n"):
            if line.strip():
                doc, *topics = line.split()
                cats[doc] = topics
        parts = {"training": ([], []), "test": ([], [])}
        for doc in sorted(cats, key=lambda k: (k.split("/")[0], int(k.split("/")[1]))):
            text = " ".join(html.unescape(z.read(f"reuters/{doc}").decode("iso-8859-2")).split())
            texts, labels = parts[doc.split("/")[0]]
            texts.append(text)
            labels.append(label_set(sorted(set(cats[doc])), f"cats.txt {doc}"))  # test/19918 lists trade twice
    return TextSet(*parts["training"]), None, TextSet(*parts["test"])


@dataclass(frozen=True)
class BuiltinSet:
    folder: str
    reader: Reader
    description: str


BUILTIN: dict[str, BuiltinSet] = {
    "sms_spam": BuiltinSet("sms_spam", _sms, "SMS spam / ham, en, 2 classes, no split"),
    "sst2": BuiltinSet("sst2", _sst2, "SST-2 sentences, Kim 2014 splits, en, 2 classes"),
    "sst2_glue": BuiltinSet("sst2_glue", lambda d: _glue_names(_sst2_glue(d)),
                            "GLUE SST-2 phrases (test = GLUE dev), en, 2 classes"),
    "trec": BuiltinSet("trec", _trec, "TREC question types, en, 6 classes, official test"),
    "mr": BuiltinSet("mr", _mr, "movie-review polarity, en, 2 classes, no split"),
    "subj": BuiltinSet("subj", _subj, "subjectivity, en, 2 classes, no split"),
    "ag_news": BuiltinSet("ag_news", _ag_news, "AG News descriptions (10k train subset), en, 4 classes"),
    "financial_phrasebank": BuiltinSet("financial_phrasebank", _financial,
                                       "financial news sentiment (50% agreement), en, 3 classes"),
    "financial_phrasebank_allagree": BuiltinSet("financial_phrasebank", lambda d: _financial(d, "All"),
                                                "financial news sentiment (100% agreement), en, 3 classes"),
    "thucnews": BuiltinSet("thucnews", _thucnews, "THUCNews titles, zh, 10 classes, official splits"),
    "chnsenticorp_htl": BuiltinSet("chnsenticorp_htl",
                                   lambda d: (_csv_label_review(d / "ChnSentiCorp_htl_all.csv", SENTIMENT), None, None),
                                   "hotel-review sentiment, zh, 2 classes, no split"),
    "waimai_10k": BuiltinSet("waimai_10k",
                             lambda d: (_csv_label_review(d / "waimai_10k.csv", SENTIMENT), None, None),
                             "food-delivery review sentiment, zh, 2 classes, no split"),
    "goemotions": BuiltinSet("goemotions", _goemotions,
                             "GoEmotions Reddit comments, en, 28 labels, multi-label, official splits"),
    "20news": BuiltinSet("20news_bydate", _newsgroups,
                         "20 Newsgroups bydate, headers stripped, en, 20 classes, long posts, official test"),
    "reuters": BuiltinSet("reuters_modapte", _reuters,
                          "Reuters-21578 ModApte, en, 90 topics, multi-label, long-ish, official test"),
}


def builtin_path(name: str) -> Path:
    return data_root() / BUILTIN[name].folder


def read_builtin(name: str) -> tuple[TextSet, TextSet | None, TextSet | None]:
    """The raw (train, dev, test) of a built-in set; missing parts are None."""
    folder = builtin_path(name)
    if not folder.is_dir():
        raise ConvtuneError(
            f"data set {name!r} not found at {folder}; set CONVTUNE_DATA to the folder that holds {BUILTIN[name].folder}/")
    return BUILTIN[name].reader(folder)


def read_spec(spec: str, text_col: str | None = None, label_col: str | None = None,
              encoding: str = "utf-8", strict: bool = False, rule: LabelRule = SINGLE) -> TextSet:
    """One labelled set from a SPEC: a file path, or a built-in name (its test split, else train).
    A file's rows with an empty text are skipped with a warning, or refused with `strict`."""
    if spec in BUILTIN:
        train, _dev, test = read_builtin(spec)
        return as_sets(test if test is not None else train, rule.multi)
    _check_spec(spec)
    return as_sets(read_table(spec, text_col, label_col, encoding, strict=strict, rule=rule), rule.multi)


def as_sets(data: TextSet | None, multi: bool) -> TextSet | None:
    """Single-label data as label sets of one (--multi-label on single-label data)."""
    if data is None or not multi or is_multi(data.labels):
        return data
    return TextSet(data.texts, [(y,) for y in data.labels])


def _check_spec(spec: str) -> None:
    if not Path(spec).exists():
        raise ConvtuneError(f"{spec!r} is neither a file nor a built-in data set (see `convtune datasets`)")


def load_splits(spec: str, dev: str | None = None, test: str | None = None, *, seed: int = 42,
                text_col: str | None = None, label_col: str | None = None,
                encoding: str = "utf-8", strict: bool = False, rule: LabelRule = SINGLE) -> Splits:
    """Resolve SPECs into train / dev / test, splitting what is missing with the seed.
    Files' rows with an empty text are skipped with a warning, or refused with `strict`.
    `rule` says how rows give labels (label sets: --label-sep, --label-cols, --multi-label)."""
    if spec in BUILTIN:
        tr, dv, te = read_builtin(spec)
        name = spec
    else:
        _check_spec(spec)
        tr, dv, te = read_table(spec, text_col, label_col, encoding, strict=strict, rule=rule), None, None
        name = Path(spec).name
    if dev is not None:
        dv = read_table(dev, text_col, label_col, encoding, strict=strict, rule=rule)
    if test is not None:
        te = read_table(test, text_col, label_col, encoding, strict=strict, rule=rule)
    multi = rule.multi or any(p is not None and is_multi(p.labels) for p in (tr, dv, te))
    return make_splits(name, *(as_sets(p, multi) for p in (tr, dv, te)), seed)


def split_record(model_dir: str | Path) -> dict | None:
    """A run directory's split.json (how its split was made, each part's fingerprint), or None."""
    import json

    record = Path(model_dir) / "split.json"
    return json.loads(record.read_text(encoding="utf-8")) if record.is_file() else None


def model_splits(model_dir: str | Path, name: str | None = None) -> Splits | None:
    """The built-in set's split a model was trained on (its recorded seed), or None.

    ``name`` defaults to the data set recorded in ``DIR/split.json``; files are not rebuilt.
    """
    info = split_record(model_dir) or {}
    name = name or info.get("dataset")
    if name not in BUILTIN:
        return None
    return load_splits(name, seed=info.get("seed", 42))
