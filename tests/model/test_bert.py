"""The served model's lean encoder gives the vectors sentence-transformers gives, and knows what it cannot run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.bert import BertEncoder, is_supported
from model.encoder import (
    MAX_TOKENS,
    SentenceTransformerEncoder,
    default_encoder_path,
    encode,
    load_encoder,
    text_encoder,
    token_counts,
)
from model.text import movie_texts

EDGE_TEXTS = [
    "",
    "   ",
    "space adventure with robots",
    "Amélie — 東京物語 🎬 Łódź naïve café",
    "a film " * 400,  # far beyond 256 word pieces: both cut it at the same place
    "THE MATRIX",
]


@pytest.fixture(scope="module")
def reference() -> object:
    return load_encoder(default_encoder_path(), device="cpu")


@pytest.fixture(scope="module")
def lean() -> BertEncoder:
    return BertEncoder(default_encoder_path(), MAX_TOKENS)


def test_same_vectors_as_sentence_transformers(
    reference: object, lean: BertEncoder, catalog_slice: pd.DataFrame
) -> None:
    texts = movie_texts(catalog_slice.head(200)) + EDGE_TEXTS
    expected = encode(reference, texts)
    got = lean(texts)
    assert got.shape == expected.shape and got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-5
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_one_text_at_a_time_equals_a_batch(lean: BertEncoder) -> None:
    batch = lean(EDGE_TEXTS)
    one_by_one = np.concatenate([lean([text]) for text in EDGE_TEXTS])
    assert np.abs(batch - one_by_one).max() < 1e-5
    assert lean([]).shape == (0, batch.shape[1])


def test_batches_of_any_size_give_the_same_vectors_in_input_order(lean: BertEncoder) -> None:
    texts = [f"{'epic ' * (i % 7)}film number {i}" for i in range(50)] + EDGE_TEXTS  # lengths interleaved
    whole = lean(texts, batch_size=64)
    for size in (1, 3, 16):
        assert np.abs(lean(texts, batch_size=size) - whole).max() < 1e-5
    assert np.abs(lean(texts[::-1])[::-1] - whole).max() < 1e-5


def test_token_counts_match_sentence_transformers(reference: object, lean: BertEncoder) -> None:
    counts = lean.token_counts(EDGE_TEXTS)
    assert counts.tolist() == token_counts(reference, EDGE_TEXTS).tolist()
    assert counts[EDGE_TEXTS.index("a film " * 400)] > MAX_TOKENS  # whole texts, not the window


def test_minilm_on_the_cpu_is_the_lean_encoder_and_on_another_device_sentence_transformers() -> None:
    assert is_supported(default_encoder_path())
    assert isinstance(text_encoder(default_encoder_path()), BertEncoder)  # the served model's and CPU builds'
    assert isinstance(text_encoder(default_encoder_path(), "meta"), SentenceTransformerEncoder)  # as on a GPU


def test_other_architectures_go_through_sentence_transformers(tmp_path: Path) -> None:
    folder = tmp_path / "encoder"
    shutil.copytree(default_encoder_path(), folder)
    pooling = folder / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**config, "pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}))
    assert not is_supported(folder)
    assert isinstance(text_encoder(folder), SentenceTransformerEncoder)  # CLS pooling: sentence-transformers runs it
    assert not is_supported(tmp_path / "missing")
