"""A saved all-MiniLM-style SentenceTransformer run with torch and tokenizers only: the served model's query encoder
and the CPU build's catalog encoder.

`import sentence_transformers` brings in transformers, scikit-learn and scipy: about 9 s of CPU on this 2-core
machine, paid by every scoring server that starts (a promotion, a rollback, a restart), while the old server is
still answering traffic, and by every CPU build that encodes a few changed films. The model itself is small: a
BERT encoder, mean pooling over the tokens, L2 normalisation. This module reads the same saved folder and runs
that forward pass with torch directly (about 2 s to load). It knows that one architecture only (`is_supported`);
anything else goes through sentence-transformers. tests/model/test_bert.py checks that both give the same vectors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

TRANSFORMER = "sentence_transformers.models.Transformer"
POOLING = "sentence_transformers.models.Pooling"
NORMALIZE = "sentence_transformers.models.Normalize"
BATCH = 64
QKV = ("query", "key", "value")

logger = logging.getLogger(__name__)


def is_supported(folder: str | Path) -> bool:
    """Whether `folder` is a SentenceTransformer this module reproduces: BERT (absolute positions, GELU), mean
    pooling, normalisation, weights as safetensors and a fast tokenizer."""
    folder = Path(folder)
    try:
        modules = [module["type"] for module in _json(folder / "modules.json")]
        config = _json(folder / "config.json")
        pooling = _json(folder / "1_Pooling" / "config.json")
    except (OSError, ValueError, KeyError, TypeError):
        return False
    mean_only = pooling.get("pooling_mode_mean_tokens") is True and not any(
        value for key, value in pooling.items() if key.startswith("pooling_mode_") and key != "pooling_mode_mean_tokens"
    )
    return (
        modules == [TRANSFORMER, POOLING, NORMALIZE]
        and config.get("model_type") == "bert"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and config.get("hidden_act") == "gelu"
        and mean_only
        and (folder / "model.safetensors").is_file()
        and (folder / "tokenizer.json").is_file()
    )


class BertEncoder:
    """Texts → L2-normalised float32 vectors, as `SentenceTransformer(folder).encode(..., normalize_embeddings=True)`
    gives them (tokens beyond `max_tokens` are cut, as sentence-transformers' `max_seq_length` does).

    Like sentence-transformers, texts are encoded longest first, so that each batch pads to about its own length."""

    def __init__(self, folder: str | Path, max_tokens: int, device: str = "cpu") -> None:
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        config = _json(folder / "config.json")
        saved = _json(folder / "sentence_bert_config.json") if (folder / "sentence_bert_config.json").is_file() else {}
        self.max_tokens = min(max_tokens, int(saved.get("max_seq_length") or max_tokens))
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config["layer_norm_eps"])
        self.pad_id = int(config.get("pad_token_id") or 0)
        self.counter = Tokenizer.from_file(str(folder / "tokenizer.json"))  # whole texts, for token_counts
        self.counter.no_truncation()
        self.counter.no_padding()
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_tokens)
        self.tokenizer.no_padding()
        self.device = torch.device(device)
        weights = load_file(str(folder / "model.safetensors"))
        self.weights: dict[str, Any] = {
            key.removeprefix("bert."): value.float().to(self.device) for key, value in weights.items()
        }
        self.dim = int(self.weights["embeddings.word_embeddings.weight"].shape[1])
        self._torch = torch

    def __call__(self, texts: Sequence[str], batch_size: int = BATCH, progress: bool = False) -> np.ndarray:
        torch = self._torch
        encodings = self.tokenizer.encode_batch(list(texts))
        order = np.argsort([-len(encoding.ids) for encoding in encodings], kind="stable")
        vectors = np.empty((len(encodings), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for done, start in enumerate(range(0, len(order), batch_size), start=1):
                rows = order[start : start + batch_size]
                ids = np.full((len(rows), len(encodings[rows[0]].ids)), self.pad_id, dtype=np.int64)
                mask = np.zeros_like(ids)
                for i, row in enumerate(rows):
                    ids[i, : len(encodings[row].ids)] = encodings[row].ids
                    mask[i, : len(encodings[row].ids)] = 1
                forward = self._forward(torch.from_numpy(ids).to(self.device), torch.from_numpy(mask).to(self.device))
                vectors[rows] = forward.cpu().numpy()
                if progress and (done % 25 == 0 or start + batch_size >= len(order)):
                    logger.info("encoded %d of %d texts", min(start + batch_size, len(order)), len(order))
        return vectors

    def token_counts(self, texts: Sequence[str]) -> np.ndarray:
        """Word pieces per whole text (special tokens included): how much of it the `max_tokens` window sees."""
        return np.array([len(encoding.ids) for encoding in self.counter.encode_batch(list(texts))], dtype=np.int64)

    def _forward(self, ids: Any, mask: Any) -> Any:
        """(batch, tokens) ids and attention mask → (batch, dim) normalised mean of the last hidden states."""
        functional = self._torch.nn.functional
        w = self.weights
        tokens = ids.shape[1]
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:tokens]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        attend = mask[:, None, None, :].bool()
        for layer in range(self.layers):
            prefix = f"encoder.layer.{layer}."
            query, key, value = (self._heads(self._linear(x, f"{prefix}attention.self.{part}")) for part in QKV)
            context = functional.scaled_dot_product_attention(query, key, value, attn_mask=attend)
            context = self._linear(context.transpose(1, 2).reshape(x.shape), prefix + "attention.output.dense")
            x = self._norm(context + x, prefix + "attention.output.LayerNorm")
            hidden = functional.gelu(self._linear(x, prefix + "intermediate.dense"))
            x = self._norm(self._linear(hidden, prefix + "output.dense") + x, prefix + "output.LayerNorm")
        weights = mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return functional.normalize(pooled, p=2, dim=1)

    def _linear(self, x: Any, name: str) -> Any:
        return self._torch.nn.functional.linear(x, self.weights[name + ".weight"], self.weights[name + ".bias"])

    def _norm(self, x: Any, name: str) -> Any:
        weight, bias = self.weights[name + ".weight"], self.weights[name + ".bias"]
        return self._torch.nn.functional.layer_norm(x, weight.shape, weight, bias, self.eps)

    def _heads(self, x: Any) -> Any:
        batch, tokens, width = x.shape
        return x.view(batch, tokens, self.heads, width // self.heads).transpose(1, 2)


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
