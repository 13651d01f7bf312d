"""Export a trained transformer classifier to one ONNX graph (+ optional int8), with parity checks.

    OUT/model.onnx        encoder + head: (input_ids, attention_mask) -> logits, dynamic batch / length
    OUT/tokenizer.json    the tokenizer, as saved by Hugging Face
    OUT/convtune.json     kind "onnx", the source model's manifest (labels, head, training), parity figures

Parity is measured on the model's dev set before the directory is renamed into place: fp32
ONNX probabilities must be within 1e-4 of PyTorch's (fp32), and int8 labels must agree with
PyTorch's on >= 99% of the texts with accuracy within 0.5 points. A failed check leaves no
output directory.

We use the TorchScript-based exporter (``dynamo=False``): it writes one self-contained file
(the dynamo exporter writes external data, which ONNX Runtime's quantiser chokes on) and its
int8 model was slightly faster here (../shared/notes/machine-facts.md).
"""

from __future__ import annotations

import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convtune._fs import atomic_dir, write_json
from convtune.errors import ConvtuneError
from convtune.modeling.adapters import ADAPTER_MODES
from convtune.modeling.model_card import model_card
from convtune.modeling.checkpoint import CONFIG_NAME, read_manifest

ONNX_NAME = "model.onnx"
FP32_TOLERANCE = 1e-4
INT8_MIN_AGREEMENT = 0.99
INT8_MAX_ACCURACY_DROP = 0.005


@dataclass
class ParityData:
    texts: list[str]
    labels: list[str] | None
    source: str


def export_graph(clf, path: Path, opset: int = 17) -> None:
    """The classifier's encoder + head as one fp32 ONNX graph with dynamic batch and length."""
    import torch

    model = clf.model_.float().eval()         # forward(input_ids, attention_mask) -> (B, C) logits
    enc = clf.tokenizer_(["a short example", "and a somewhat longer example sentence"],
                         padding=True, return_tensors="pt")
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "logits": {0: "batch"}}
    # The TorchScript exporter warns about tracing details (constant folding, index ops) that
    # do not affect this graph; the parity check below is what says the export is right.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (enc["input_ids"], enc["attention_mask"]), str(path),
                          input_names=["input_ids", "attention_mask"], output_names=["logits"],
                          dynamic_axes=axes, opset_version=opset, dynamo=False)


def quantize_int8(src: Path, dst: Path) -> None:
    """ONNX Runtime dynamic quantisation of the MatMuls: int8 weights (one scale per output
    channel), activations quantised on the fly.

    Measured on SST-2 dev with MiniLM + CNN head (docs/deployment.md): the default settings
    (per-tensor scales, Conv and Gather quantised too) agreed with fp32 on 98.3% of labels;
    per-channel scales on MatMul only agreed on 99.1% and ran fastest (int8 Conv is slow here).
    """
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)   # "consider pre-processing" notices: not actionable here
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"])


def _accuracy(pred: list[str], labels: list[str] | None) -> float | None:
    return None if labels is None else float(np.mean([p == y for p, y in zip(pred, labels)]))


def _decided(clf, proba: np.ndarray) -> list:
    """Labels as stored: the top label, or (multi-label) the sorted set over the thresholds."""
    if clf.multi_label_:
        return clf.label_space_.decode_stored(proba)
    return [clf.labels_[i] for i in proba.argmax(1)]


def check_parity(clf, onnx_clf, data: ParityData, int8: bool) -> dict:
    """Compare the exported model with PyTorch (fp32) on the parity texts; raise if it fails."""
    clf.runtime.precision = "fp32"                     # the reference is the fp32 PyTorch model ...
    clf.runtime.device = "cpu"                         # ... on the CPU, where the export runs
    t = time.perf_counter()
    ref = clf.predict_proba(data.texts)
    torch_s = time.perf_counter() - t
    t = time.perf_counter()
    got = onnx_clf.predict_proba(data.texts)
    onnx_s = time.perf_counter() - t
    ref_pred, got_pred = _decided(clf, ref), _decided(clf, got)
    out = {"texts": len(data.texts), "source": data.source, "int8": int8,
           "max_abs_prob_diff": float(np.abs(ref - got).max()),
           "label_agreement": float(np.mean([a == b for a, b in zip(ref_pred, got_pred)])),
           "pytorch_accuracy": _accuracy(ref_pred, data.labels),
           "onnx_accuracy": _accuracy(got_pred, data.labels),
           "pytorch_fp32_seconds": round(torch_s, 3), "onnx_seconds": round(onnx_s, 3)}
    if not int8 and out["max_abs_prob_diff"] > FP32_TOLERANCE:
        raise ConvtuneError(f"ONNX parity failed: probabilities differ by {out['max_abs_prob_diff']:.2e} "
                            f"(> {FP32_TOLERANCE}) on {data.source}")
    if int8:
        drop = (out["pytorch_accuracy"] or 0) - (out["onnx_accuracy"] or 0) if data.labels else 0.0
        if out["label_agreement"] < INT8_MIN_AGREEMENT or drop > INT8_MAX_ACCURACY_DROP:
            raise ConvtuneError(f"int8 parity failed on {data.source}: labels agree on "
                                f"{out['label_agreement']:.2%}, accuracy {-drop * 100:+.2f} points")
    return out


def export_onnx(model_dir: str | Path, out: str | Path, data: ParityData, int8: bool = False,
                overwrite: bool = False) -> dict:
    """Export DIR to OUT (ONNX, optionally int8) and return the parity report written into it."""
    from convtune.estimators.base import load_as
    from convtune.estimators.blend import LEXICAL_DIR
    from convtune.estimators.onnx import OnnxClassifier
    from convtune.estimators.transformer import Classifier

    if Path(out).resolve() == Path(model_dir).resolve():  # --overwrite would delete the source model
        raise ConvtuneError(f"{out} is the model being exported; choose another --out")
    manifest = read_manifest(model_dir)
    if manifest.get("kind", "transformer") != "transformer":
        raise ConvtuneError(f"{model_dir}: only transformer models export to ONNX (this is {manifest['kind']!r})")
    clf = Classifier.load(model_dir)
    if clf.mode in ADAPTER_MODES:  # one graph: the adapter folded into the encoder's weights
        clf = clf.merged()
    with atomic_dir(out, overwrite) as tmp:
        graph = tmp / ("model-fp32.onnx" if int8 else ONNX_NAME)
        try:
            export_graph(clf, graph)
        except Exception as e:  # the exporter raises many types; the user needs one line
            raise ConvtuneError(f"ONNX export of {model_dir} failed: {str(e).strip().splitlines()[0]}") from None
        if int8:
            quantize_int8(graph, tmp / ONNX_NAME)
            graph.unlink()
        clf.tokenizer_.save_pretrained(tmp)
        if clf.lexical_ is not None:  # a blend: its lexical part travels too, applied as in PyTorch
            shutil.copytree(Path(model_dir) / LEXICAL_DIR, tmp / LEXICAL_DIR)
        for record in ("metrics.json", "split.json"):   # the training record travels with the export
            if (Path(model_dir) / record).is_file():
                shutil.copy2(Path(model_dir) / record, tmp / record)
        manifest = dict(clf.manifest_, format_version=manifest["format_version"])  # merged: as fine-tuned
        exported = {"kind": "onnx", "format_version": manifest["format_version"],
                    "onnx": {"file": ONNX_NAME, "int8": int8, "opset": 17,  # rows: checked against the tokenizer
                             "vocab_rows": clf.model_.encoder.get_input_embeddings().num_embeddings},
                    "source": {k: v for k, v in manifest.items() if k != "format_version"}}
        parity = check_parity(clf, load_as(OnnxClassifier, tmp, exported), data, int8)  # labels, thresholds too
        exported["onnx"]["parity"] = parity
        write_json(tmp / CONFIG_NAME, exported)
        card = Path(model_dir) / "README.md"
        text = card.read_text(encoding="utf-8") if card.is_file() else model_card(manifest, name=Path(model_dir).name)
        (tmp / "README.md").write_text(text + export_section(int8, parity, Path(model_dir).name), encoding="utf-8")
    return parity


def export_section(int8: bool, parity: dict, source: str) -> str:
    """The model card's note on this export (appended to the source model's card)."""
    facts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in parity.items() if isinstance(v, int | float | bool))
    return (f"\n## This export\n\nONNX{' with dynamic int8 weights' if int8 else ' (fp32)'} of `{source}`, "
            f"run by ONNX Runtime (`convtune.load(DIR)` or `convtune serve DIR`); the temperature and thresholds "
            f"in convtune.json are applied to the graph's logits. Parity check against the PyTorch model: {facts}.\n")


def parity_data(model_dir: str | Path, spec: str | None = None, text_col: str | None = None,
                label_col: str | None = None, encoding: str = "utf-8") -> ParityData:
    """Texts for the parity check: the model's dev split (built-in sets), or a labelled file."""
    from convtune.data.builtin import BUILTIN, model_splits, read_spec

    if spec is None or spec in BUILTIN:
        splits = model_splits(model_dir, spec)
        if splits is None:
            raise ConvtuneError("give --data (a built-in set or a labelled file) for the parity check")
        part = "dev" if splits.dev is not None else "test"
        data = getattr(splits, part)
        return ParityData(data.texts, data.labels, f"{splits.name} {part} ({len(data.texts)} texts)")
    data = read_spec(spec, text_col, label_col, encoding)
    return ParityData(data.texts, data.labels, f"{spec} ({len(data.texts)} texts)")
