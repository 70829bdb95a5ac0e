"""A sentence-transformers model exported to ONNX (once per model, cached) and run by onnxruntime.

The export is made offline from the model's own weights with `torch.onnx.export` (eager attention, batch and
sequence axes dynamic), optionally quantised to int8 (app/core/onnx_int8.py), and cached under
DATA_DIR/encoders/<model>-<key>/; a file lock makes concurrent processes (gunicorn workers) export it once.
Tokenisation, truncation (the model's max_seq_length), pooling and normalisation follow the model's
sentence-transformers configuration, so the fp32 vectors equal torch's (cosine ≥ 0.9999,
tests/integration/test_encoder_backends.py).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)
EXPORT_VERSION = 2  # bump when the export changes: older cached exports are then made anew
OPSET = 17
META_FILE = "export.json"
POOLING_MODES = ("mean", "cls", "max")
PROVIDERS = {"cuda": "CUDAExecutionProvider", "mps": "CoreMLExecutionProvider"}


def cached_export(model_path: str, name: str, cache_root: Path, quantize: bool) -> Path:
    """The path of model `name`'s ONNX file (int8 if `quantize`), exported into `cache_root` if not there yet."""
    directory = cache_root / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}-{_model_key(model_path)}"
    target = directory / ("model-int8.onnx" if quantize else "model.onnx")
    if target.exists():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be exporting it right now
        if not (directory / "model.onnx").exists():
            log.warning("exporting %s to ONNX into %s (once) ...", model_path, directory)
            _export(model_path, directory)
        if quantize and not target.exists():
            log.warning("quantising %s to int8 into %s (once) ...", model_path, directory)
            _export_int8(model_path, directory, target)
    return target


def _model_key(model_path: str) -> str:
    """Changes when the model's files (names, sizes, times) or the export code change."""
    digest = hashlib.sha256(f"{EXPORT_VERSION}:{model_path}".encode())
    root = Path(model_path)
    for path in sorted(root.rglob("*")) if root.is_dir() else []:
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def _export(model_path: str, directory: Path) -> None:
    """model.onnx (the transformer: token ids → token embeddings) and export.json (how to pool them)."""
    from sentence_transformers import SentenceTransformer

    st_model = SentenceTransformer(model_path, device="cpu")
    mode = next((getattr(module, "pooling_mode", None) for module in st_model if hasattr(module, "pooling_mode")), None)
    if mode not in POOLING_MODES:
        raise ValueError(f"{model_path} pools with {mode!r}, not one of {POOLING_MODES}: use EMBEDDING_BACKEND=torch")
    tokenizer = st_model.tokenizer
    partial = directory / "model.partial"
    names = _to_onnx(_eager_transformer(model_path), tokenizer, partial)
    tokenizer.save_pretrained(directory)
    meta = {"max_seq_length": st_model.max_seq_length, "pooling": mode, "inputs": names,
            "dimension": int(st_model.get_embedding_dimension())}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2))
    os.replace(partial, directory / "model.onnx")


def _export_int8(model_path: str, directory: Path, target: Path) -> None:
    """`target`: the transformer smoothed, exported and quantised (app/core/onnx_int8.py), beside model.onnx."""
    from transformers import AutoTokenizer

    from app.core.onnx_int8 import quantize, smooth

    tokenizer = AutoTokenizer.from_pretrained(directory)
    transformer = _eager_transformer(model_path)
    smooth(transformer, tokenizer, json.loads((directory / META_FILE).read_text())["max_seq_length"])
    smoothed, partial = directory / "model-smoothed.partial", target.with_suffix(".partial")
    _to_onnx(transformer, tokenizer, smoothed)
    quantize(smoothed, partial)
    smoothed.unlink()
    os.replace(partial, target)


def _eager_transformer(model_path: str):
    """The model's transformer with eager attention (SDPA's mask building gets traced with the example's shapes
    baked in)."""
    from transformers import AutoModel

    return AutoModel.from_pretrained(model_path, attn_implementation="eager").eval()


def _to_onnx(transformer, tokenizer, target: Path) -> list[str]:
    """`transformer` (token ids → token embeddings, batch and sequence axes dynamic) exported to `target`; its
    input names."""
    import torch

    example = tokenizer(["an example", "a longer example sentence"], padding=True, return_tensors="pt")
    names = [name for name in tokenizer.model_input_names if name in example]

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = transformer

        def forward(self, *inputs):
            return self.transformer(**dict(zip(names, inputs))).last_hidden_state

    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "token_embeddings"]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's warnings about Python values it records as constants
        torch.onnx.export(TokenEmbeddings(), tuple(example[name] for name in names), str(target), input_names=names,
                          output_names=["token_embeddings"], dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return names


class OnnxEncoder:
    """Dense, L2-normalised embeddings from an exported model (see the module doc)."""

    def __init__(self, onnx_file: Path, name: str, batch_size: int = 64, instruction: str = "",
                 device: str = "cpu", threads: int = 1):
        import onnxruntime
        from transformers import AutoTokenizer

        directory = onnx_file.parent
        meta = json.loads((directory / META_FILE).read_text())
        self.tokenizer = AutoTokenizer.from_pretrained(directory)
        self.max_length, self.pooling, self.inputs = meta["max_seq_length"], meta["pooling"], meta["inputs"]
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning threads wait for each other on a shared machine (as torch's OpenMP threads do).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(onnx_file), options, providers=_providers(device))
        self.name = name
        self.dimension = int(meta["dimension"])
        self.batch_size = batch_size
        self.instruction = instruction

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        order = np.argsort([-len(text) for text in texts], kind="stable")  # similar lengths pad less
        vectors = np.zeros((len(texts), self.dimension), np.float32)
        for start in range(0, len(texts), self.batch_size):
            chosen = order[start:start + self.batch_size]
            vectors[chosen] = self._encode([texts[i] for i in chosen])
        return vectors

    def encode_query(self, text: str) -> np.ndarray:
        return self._encode([self.instruction + text])[0]

    def _encode(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        (hidden,) = self.session.run(None, {name: tokens[name].astype(np.int64) for name in self.inputs})
        mask = tokens["attention_mask"][..., None].astype(np.float32)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "max":
            pooled = np.where(mask > 0, hidden, -1e9).max(axis=1)
        else:
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _providers(device: str) -> list[str]:
    """onnxruntime's providers for a resolved device; the CPU (with a warning) if its provider is not installed."""
    import onnxruntime

    wanted = PROVIDERS.get(device)
    if wanted is None:
        return ["CPUExecutionProvider"]
    if wanted not in onnxruntime.get_available_providers():
        log.warning("onnxruntime has no %s here (install onnxruntime-gpu for CUDA): encoding on the CPU", wanted)
        return ["CPUExecutionProvider"]
    return [wanted, "CPUExecutionProvider"]
