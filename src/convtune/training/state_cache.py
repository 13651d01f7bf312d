"""On-disk cache of frozen-encoder token states, so the encoder runs once per text.

Layout (one store per encoder identity + max length, under the cache root):

    <root>/<encoder-key>-L<max_length>/
        shard-<id>.f16        token states, fp16, rows of H values, texts back to back
        shard-<id>.idx.npz    per text: sha256 key (16 uint8), row offset, token count

A fill writes a new shard and its index under temporary names and renames the index last, so
a crash never leaves an index that points at missing data. Reads use positioned reads
(`os.pread`), not a memory map: the page cache holds the hot data and the process's own
memory stays small even when the store is larger than RAM.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from convtune._fs import disk_full, no_space
from convtune.errors import ConvtuneError
from convtune.modeling.encoders import encoder_files
from convtune.paths import default_cache_root


def encoder_key(encoder_dir: Path, max_length: int) -> str:
    """Identity of (encoder weights, tokenizer, max length): file names, sizes and mtimes."""
    h = hashlib.sha256(str(max_length).encode())
    for name, size, mtime in encoder_files(encoder_dir):
        h.update(f"{name}:{size}:{mtime}".encode())
    return f"{encoder_dir.name}-{h.hexdigest()[:16]}-L{max_length}"


def text_key(ids: list[int]) -> bytes:
    """Key of one text: a hash of its token ids (the tokenizer is part of the store key)."""
    return hashlib.sha256(np.asarray(ids, dtype=np.int64).tobytes()).digest()[:16]


@dataclass
class _Entry:
    shard: str
    offset: int   # first row
    length: int   # rows (tokens)


class StateStore:
    """Token states of one encoder at one max length; lookup by token-id hash."""

    def __init__(self, root: Path, key: str, hidden_size: int, layers: int = 1):
        self.dir = Path(root) / (key if layers == 1 else f"{key}-k{layers}")
        self.layers = layers
        self.hidden = hidden_size * layers  # values per token row: k layers side by side
        self.entries: dict[bytes, _Entry] = {}
        self._fds: dict[str, int] = {}
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "meta.json"
        if not meta.exists():
            tmp = self.dir / f".meta.{uuid.uuid4().hex}"
            tmp.write_text(json.dumps({"hidden_size": hidden_size, "dtype": "float16"}))
            tmp.replace(meta)
        elif json.loads(meta.read_text())["hidden_size"] != hidden_size:
            raise ConvtuneError(f"{self.dir}: cache was made for another hidden size; clear it")
        self.reload()

    def reload(self) -> None:
        """Read every complete shard's index (again: another process may have written more)."""
        for idx in sorted(self.dir.glob("shard-*.idx.npz")):
            shard = idx.name[: -len(".idx.npz")]
            if not (self.dir / f"{shard}.f16").exists():
                continue
            with np.load(idx) as z:
                for k, off, n in zip(z["keys"], z["offsets"], z["lengths"]):
                    self.entries[k.tobytes()] = _Entry(shard, int(off), int(n))

    def missing(self, keys: list[bytes]) -> list[int]:
        """Positions of keys not in the store (first occurrence of each)."""
        seen: set[bytes] = set()
        out = []
        for i, k in enumerate(keys):
            if k not in self.entries and k not in seen:
                seen.add(k)
                out.append(i)
        return out

    def write_shard(self, keys: list[bytes], states: list[np.ndarray]) -> None:
        """Append one shard: states[i] is (length_i, H) float for text keys[i]."""
        if not keys:
            return
        shard = f"shard-{uuid.uuid4().hex[:12]}"
        data, idx = self.dir / f"{shard}.f16", self.dir / f"{shard}.idx.npz"
        tmp_data, tmp_idx = self.dir / f".{shard}.f16.tmp", self.dir / f".{shard}.idx.tmp.npz"
        offsets, lengths, row = [], [], 0
        try:
            with open(tmp_data, "wb") as f:
                for s in states:
                    f.write(np.ascontiguousarray(s, dtype=np.float16).tobytes())
                    offsets.append(row)
                    lengths.append(len(s))
                    row += len(s)
            np.savez(tmp_idx, keys=np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(-1, 16),
                     offsets=np.asarray(offsets, np.int64), lengths=np.asarray(lengths, np.int64))
        except OSError as e:  # a full disk: no temporary file stays behind, one line says so
            tmp_data.unlink(missing_ok=True)
            tmp_idx.unlink(missing_ok=True)
            if no_space(e):
                raise disk_full(self.dir, needed=sum(s.size for s in states) * 2 + 24 * len(keys)) from None
            raise
        tmp_data.replace(data)
        tmp_idx.replace(idx)  # the index goes last: only complete shards are ever indexed
        for k, off, n in zip(keys, offsets, lengths):
            self.entries[k] = _Entry(shard, off, n)

    def read(self, key: bytes) -> np.ndarray:
        """(length, H) float16 states of one text."""
        e = self.entries[key]
        fd = self._fds.get(e.shard)
        if fd is None:
            fd = self._fds[e.shard] = os.open(self.dir / f"{e.shard}.f16", os.O_RDONLY)
        row_bytes = self.hidden * 2
        buf = os.pread(fd, e.length * row_bytes, e.offset * row_bytes)
        return np.frombuffer(buf, dtype=np.float16).reshape(e.length, self.hidden)

    def batch(self, keys: list[bytes]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded float32 states (B, T, H) (or (B, T, k, H) with k layers) and mask (B, T)."""
        arrays = [self.read(k) for k in keys]
        lengths = torch.tensor([len(a) for a in arrays])
        width = int(lengths.max())
        # Padded in float16, converted to float32 once for the batch (not text by text).
        padded = np.zeros((len(arrays), width, self.hidden), dtype=np.float16)
        for i, a in enumerate(arrays):
            padded[i, : len(a)] = a
        h = torch.from_numpy(padded).float()
        mask = (torch.arange(width) < lengths[:, None]).long()
        if self.layers > 1:
            h = h.view(len(arrays), width, self.layers, self.hidden // self.layers)
        return h, mask

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


# What a StateStore writes, and nothing else: `cache clear` deletes only these names.
_STORE_DIR = re.compile(r".+-L\d+(-k\d+)?")
_STORE_FILE = re.compile(r"meta\.json|\.meta\.[0-9a-f]+|\.?shard-[0-9a-f]+\.(f16|idx\.npz|f16\.tmp|idx\.tmp\.npz)")


def _is_store(d: Path) -> bool:
    """A directory a StateStore made: a store key as its name and the store's meta.json."""
    if not (d.is_dir() and _STORE_DIR.fullmatch(d.name) and (d / "meta.json").is_file()):
        return False
    try:
        meta = json.loads((d / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and {"hidden_size", "dtype"} <= meta.keys()


def store_dirs(root: Path | None = None) -> list[Path]:
    """The store folders under the cache root (nothing else there counts as cache)."""
    root = root or default_cache_root()
    return sorted(d for d in root.glob("*") if _is_store(d)) if root.is_dir() else []


def cache_info(root: Path | None = None) -> list[dict]:
    """Each store under the cache root with its text count and size."""
    out = []
    for d in store_dirs(root):
        n = 0
        for idx in d.glob("shard-*.idx.npz"):
            with np.load(idx) as z:
                n += len(z["keys"])
        size = sum(p.stat().st_size for p in d.glob("shard-*"))
        out.append({"store": d.name, "texts": n, "bytes": size, "path": str(d)})
    return out


def clear_cache(root: Path | None = None) -> int:
    """Delete the token-state stores under the cache root; returns the bytes freed.

    Only the files a StateStore writes are removed, and a store's directory only once that
    leaves it empty; the root itself and anything else in it stay. It used to remove the
    whole root, so a mistyped `--cache-dir` (".", a home directory, "/") deleted what was there.
    Converted encoders (`<root>/encoders`) are not token states and are kept.
    """
    freed = 0
    for d in store_dirs(root):
        for p in d.iterdir():
            if p.is_file() and not p.is_symlink() and _STORE_FILE.fullmatch(p.name):
                freed += p.stat().st_size
                p.unlink()
        with contextlib.suppress(OSError):  # a file the store did not write keeps its folder
            d.rmdir()
    return freed


@torch.inference_mode()
def fill_store(model, store: StateStore, ids: list[list[int]], pad_id: int, batch_size: int = 64,
               precision: str = "fp32", chunk: int = 4096, desc: str = "encode") -> list[bytes]:
    """Keys of `ids`, after running the encoder once over the texts the store lacks.

    Texts are encoded in length-sorted batches and written a shard per `chunk` texts, so
    memory stays bounded on large sets.
    """
    from convtune.data.batching import collate, eval_batches
    from convtune.progress import progress
    from convtune.runtime import autocast, host_to_device

    keys = [text_key(x) for x in ids]
    todo = store.missing(keys)
    model.eval()
    device = next(model.parameters()).device
    with progress(total=len(todo), desc=desc, unit="text", quiet=not todo) as bar:
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            got: dict[int, np.ndarray] = {}
            for idx in eval_batches([len(ids[i]) for i in part], batch_size):
                rows = [part[j] for j in idx]
                input_ids, mask = host_to_device(collate([ids[i] for i in rows], pad_id), device)
                with autocast(precision, device.type):
                    h = model.token_states(input_ids, mask).float().cpu().numpy()
                for b, i in enumerate(rows):
                    got[i] = h[b, : len(ids[i])].reshape(len(ids[i]), -1)  # (T, H) or (T, k*H)
                bar.update(len(rows))
            store.write_shard([keys[i] for i in part], [got[i] for i in part])
    return keys
