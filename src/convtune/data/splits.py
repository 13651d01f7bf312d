"""Train / dev / test splits: de-duplication, stratified splits, sub-samples."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from convtune.data.labels import label_counts
from convtune.data.multilabel import is_multi, stratified_split_multi
from convtune.data.texts import TextSet
from convtune.errors import ConvtuneError


@dataclass
class Splits:
    """train / dev / test plus a record of how they were made (saved with every run)."""

    train: TextSet
    dev: TextSet
    test: TextSet | None
    name: str
    record: dict = field(default_factory=dict)
    dev_carved: bool = False  # dev was cut from train here (no dev split was given)

    def describe(self) -> dict:
        """The split record plus each split's size and fingerprint."""
        out = dict(self.record, dataset=self.name)
        for part in ("train", "dev", "test"):
            s = getattr(self, part)
            if s is not None:
                out[part] = {"size": len(s), "fingerprint": s.fingerprint(),
                             "label_counts": dict(sorted(label_counts(s.labels).items()))}
        if self.train is not None and is_multi(self.train.labels):
            out |= {"multi_label": True, "stratification": "iterative (iterative-stratification, Sechidis et al. 2011)"}
        return out


# --------------------------------------------------------------------------- cleaning and splits

def dedupe_key(text: str) -> str:
    """What makes two texts duplicates: the same words with any whitespace between them."""
    return " ".join(text.split())


def deduplicate(data: TextSet) -> tuple[TextSet, int]:
    """Drop repeated texts (first occurrence wins); return the set and how many were dropped."""
    seen: set[str] = set()
    texts, labels = [], []
    for t, y in zip(data.texts, data.labels):
        key = dedupe_key(t)
        if key in seen:
            continue
        seen.add(key)
        texts.append(t)
        labels.append(y)
    return TextSet(texts, labels), len(data) - len(texts)


def stratified_split(data: TextSet, fractions: tuple[float, ...], seed: int) -> list[TextSet]:
    """Split into len(fractions) parts with every label spread in proportion.

    Deterministic for a given seed and input order. Each label's items are shuffled, then cut
    at the cumulative fractions, so small classes still appear in every part when possible.
    Label sets (multi-label) are split by iterative stratification instead.
    """
    if is_multi(data.labels):
        return [TextSet([data.texts[i] for i in part], [data.labels[i] for i in part])
                for part in stratified_split_multi(data.labels, fractions, seed)]
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, y in enumerate(data.labels):
        by_label.setdefault(y, []).append(i)
    parts: list[list[int]] = [[] for _ in fractions]
    for y in sorted(by_label):
        idx = by_label[y]
        rng.shuffle(idx)
        n = len(idx)
        bounds = [round(n * sum(fractions[:k + 1])) for k in range(len(fractions))]
        start = 0
        for k, end in enumerate(bounds):
            parts[k].extend(idx[start:end])
            start = end
    out = []
    for part in parts:
        part.sort()  # keep the file's order inside each split: easier to inspect
        out.append(TextSet([data.texts[i] for i in part], [data.labels[i] for i in part]))
    return out


def carve(data: TextSet, fractions: tuple[float, ...], names: tuple[str, ...], seed: int) -> list[TextSet]:
    """`stratified_split` into the named parts, refusing a split that leaves one empty."""
    parts = stratified_split(data, fractions, seed)
    empty = next((name for name, part in zip(names, parts) if not len(part)), None)
    if empty is not None:  # e.g. 2 texts split 80/10/10: the dev part used to fail later as "no texts given"
        raise ConvtuneError(f"{len(data)} texts are too few to split off a {empty} set; "
                            f"give more data or a separate {empty} set")
    return parts


def subsample(data: TextSet, n: int | None, seed: int) -> TextSet:
    """A stratified subset of about n items (the whole set if n is None or not smaller)."""
    if n is not None and n < 2:  # 0 used to mean "no limit" by accident
        raise ConvtuneError(f"train limit must be at least 2 texts, not {n}")
    if n is None or n >= len(data):
        return data
    return stratified_split(data, (n / len(data), 1.0), seed)[0]


def make_splits(name: str, train: TextSet, dev: TextSet | None, test: TextSet | None,
                seed: int, dedupe: bool = True) -> Splits:
    """Fill in missing dev / test parts from train and record how.

    No dev and no test: de-duplicate, then 80/10/10 stratified. Only one missing: carve 10%
    of train for it. Given splits are used as they are.
    """
    record: dict = {"seed": seed}
    carved = dev is None
    if dedupe and (dev is None or test is None):
        train, dropped = deduplicate(train)
        record["duplicates_dropped"] = dropped
    if dev is None and test is None:
        train, dev, test = carve(train, (0.8, 0.1, 0.1), ("train", "dev", "test"), seed)
        record["method"] = "de-duplicated, stratified 80/10/10"
    elif dev is None:
        train, dev = carve(train, (0.9, 0.1), ("train", "dev"), seed)
        record["method"] = "official test; dev = stratified 10% of train"
    elif test is None:
        record["method"] = "official train/dev; no test split"
    else:
        record["method"] = "official splits"
    return Splits(train=train, dev=dev, test=test, name=name, record=record, dev_carved=carved)
