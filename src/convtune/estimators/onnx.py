"""An exported model directory (``convtune export``) served by ONNX Runtime, no PyTorch model.

Same surface as every convtune classifier: ``predict`` / ``predict_proba`` / ``evaluate``;
``convtune.load(DIR)`` and ``Classifier.load(DIR)`` both return it for an exported directory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from convtune._fs import inside
from convtune.data.batching import LongText
from convtune.errors import ConvtuneError
from convtune.estimators.base import TokenClassifier, TokenPath
from convtune.estimators.blend import Blended
from convtune.modeling.encoders import check_vocabulary


class OnnxClassifier(Blended, TokenClassifier):
    """Prediction-only classifier over ``model.onnx`` (fp32 or int8) and its tokenizer; a blended
    source model's lexical part travels in ``lexical/`` and is blended as in PyTorch."""

    kind = "onnx"

    def __init__(self, session, tokenizer, labels: list[str], max_length: int, manifest: dict,
                 batch_size: int = 64):
        self.session_ = session
        self.tokenizer_ = tokenizer
        self.labels_ = list(labels)
        self.max_length = max_length
        self.manifest_ = manifest
        self.batch_size = batch_size

    def fit(self, *args, **kwargs):
        raise ConvtuneError("an exported ONNX model cannot be trained; train the source model instead")

    def _token_path(self) -> TokenPath:
        def forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            (logits,) = self.session_.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
            return torch.from_numpy(logits)

        source = self.manifest_["source"]["model"]  # the source model's rule
        long_text = LongText.of(source.get("long_text", "truncate"), source.get("windows"))
        return TokenPath(self.tokenizer_, forward, self.max_length, self.batch_size, long_text=long_text)

    def save_into(self, directory: Path) -> None:
        raise ConvtuneError("an exported model is saved by convtune export; copy its directory instead")

    @classmethod
    def _load_from(cls, path: Path, manifest: dict) -> OnnxClassifier:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        path = Path(path)
        model_file = inside(path, manifest.get("onnx", {}).get("file", "model.onnx"))
        if not model_file.is_file():
            raise ConvtuneError(f"{path}: exported model has no {model_file.name}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()  # the process's setting: the user's or the command's
        try:
            session = ort.InferenceSession(str(model_file), opts, providers=["CPUExecutionProvider"])
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False, local_files_only=True)
        except Exception as e:  # ORT raises its own exception types for a bad graph
            raise ConvtuneError(f"cannot load exported model {path}: {str(e).splitlines()[0]}") from None
        _check_graph(model_file, session, len(manifest["source"]["model"]["labels"]))
        rows = manifest.get("onnx", {}).get("vocab_rows")  # older exports lack it
        if rows is not None:
            check_vocabulary(path, len(tokenizer), rows)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        source = manifest["source"]["model"]
        clf = cls(session, tokenizer, source["labels"], source["max_length"], manifest)
        clf._load_blend(path, manifest["source"])
        return clf

    def get_params(self, deep: bool = True) -> dict:
        """What the export came from (an exported model is not re-fitted, so not cloned)."""
        return self.hyperparameters()

    def hyperparameters(self) -> dict:
        source = self.manifest_["source"]["model"]
        int8 = self.manifest_.get("onnx", {}).get("int8", False)
        return {"encoder": source["encoder"], "head": source["head"],
                "mode": f"onnx{'-int8' if int8 else ''}", "max_length": self.max_length,
                "seed": self.manifest_["source"].get("train", {}).get("seed")}


def _check_graph(model_file: Path, session, labels: int) -> None:
    """An exported graph whose weights hold NaN or infinity (every answer NaN), or whose logits
    have another number of columns than the manifest has labels (answers under wrong names)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model_file), load_external_data=False).graph
    for init in graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL or init.data_type not in (
                onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16):
            continue
        if not np.isfinite(numpy_helper.to_array(init).astype(np.float32)).all():
            raise ConvtuneError(f"{model_file}: weight {init.name} holds NaN or infinite values")
    columns = session.get_outputs()[0].shape[-1]
    if isinstance(columns, int) and columns != labels:
        raise ConvtuneError(f"{model_file}: the graph gives {columns} logits a text, convtune.json names {labels} labels")
