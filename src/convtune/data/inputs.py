"""What the Python API is given (lists, generators, numpy arrays, pandas and `datasets`
columns) as checked `TextSet`s: the one gate between a user's objects and the estimators."""

from __future__ import annotations

from convtune.data.labels import check_labels, label_list, warn_rare_classes
from convtune.data.multilabel import is_multi, label_set
from convtune.data.splits import carve
from convtune.data.texts import TextSet, as_column, as_texts, missing_label
from convtune.errors import ConvtuneError


def train_dev(texts, labels, dev_texts, dev_labels, seed: int) -> tuple[TextSet, TextSet, list[str]]:
    """(train, dev, label map) for fit(): checked inputs, dev = stratified 10% of train if not given."""
    train = as_set(texts, labels, "training data")
    label_map = label_list(train)
    warn_rare_classes(train)
    if dev_texts is None:
        train, dev = carve(train, (0.9, 0.1), ("training", "dev"), seed)
    else:
        dev = as_set(dev_texts, dev_labels, "dev data", multi=is_multi(train.labels))
        check_labels(dev, label_map, "dev data")
    return train, dev, label_map


def as_set(texts, labels, what: str, multi: bool | None = None) -> TextSet:
    """Texts and labels as a TextSet; rejects length mismatches and empty texts. Labels that are
    lists (or tuples / sets) make a multi-label set; `multi=True` also reads a plain label as a
    set of one (single-label data for a multi-label model)."""
    texts = as_texts(texts, empty_ok=False, where=f"{what}: ")
    labels = [] if labels is None else as_column(labels, "labels")
    if len(labels) != len(texts):
        raise ConvtuneError(f"{what}: {len(texts)} texts but {len(labels)} labels")
    gap = next((i for i, y in enumerate(labels) if missing_label(y)), None)
    if gap is not None:
        raise ConvtuneError(f"{what}: labels[{gap}] is missing ({labels[gap]!r}); drop unlabelled texts, or give "
                            "them a label")
    if multi or (multi is None and any(isinstance(y, list | tuple | set | frozenset) for y in labels)):
        return TextSet(texts, [label_set(y if isinstance(y, list | tuple | set | frozenset) else [y],
                                         f"{what}, text {i + 1}") for i, y in enumerate(labels)])
    return TextSet(texts, [str(y) for y in labels])
