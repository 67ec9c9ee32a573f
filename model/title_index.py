"""Candidates for fuzzy title matching, found without reading every title: an inverted index of the character
trigrams of each title key (padded with a space at each end, so openings and endings count), each trigram's list of
titles ordered best known first.

A query's candidates come from two readings of its trigrams' lists, at most `CANDIDATES` titles from each, those that
share the most trigrams with it (the better known first among equals): the lists of its rarest trigrams read in full,
up to `READ` titles in all (what finds an obscure title), and the `HEAD` best-known titles of every list (what finds a
well-known title whose trigrams are all common). rapidfuzz then scores only those (model/resolve.py). A query of one
or two characters has no trigram worth the name: its candidates are the best-known titles of each key length that
can score at least half with it (edit-distance ratio: up to three times its length). What a query costs is bounded
by its length, `READ`, `HEAD` and `CANDIDATES`, not by the size of the catalog.

A title whose trigrams are all common, that is itself obscure and that shares few trigrams with the query (a
transposed letter in a word of four: "lsat" shares none with "last") can be missed, where scoring every title would
have listed it after the better candidates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

GRAM = 3
READ = 20_000  # titles read in full from a query's rarest trigrams' lists, in all
HEAD = 256  # titles read from the head of each of a query's trigrams' lists, the best known
CANDIDATES = 1000  # titles taken from each of the two readings
SHORT = GRAM - 1  # queries of up to this many characters are matched by key length
_PAST_END = np.iinfo(np.int64).max  # no trigram: past the end of a key shorter than its chunk's longest


class TitleGrams:
    """The trigram index of a catalog's title keys; `notability` orders the titles kept and the candidates."""

    def __init__(self, keys: Sequence[str], notability: np.ndarray) -> None:
        self._notability = np.asarray(notability, dtype=np.float64)
        rows, grams = _key_grams(keys)
        self._vocabulary, gram_of = np.unique(grams, return_inverse=True)  # the trigrams' codes (`_code`), sorted
        # each trigram's titles, the best known first (ties to the lower row)
        order = np.lexsort((rows, -self._notability[rows], gram_of))
        self._postings = rows[order].astype(np.int32)
        self._starts = np.searchsorted(gram_of[order], np.arange(len(self._vocabulary) + 1))
        # short queries: the best-known titles of each key length up to 3 * SHORT
        lengths = np.fromiter(map(len, keys), np.int64, len(keys))
        by_notability = np.lexsort((np.arange(len(keys)), -self._notability))
        self._short = {
            length: by_notability[lengths[by_notability] == length][:HEAD] for length in range(1, 3 * SHORT + 1)
        }

    def candidates(self, key: str) -> np.ndarray:
        """Rows worth scoring against the query key `key`, in row order: those of the two readings of its trigrams'
        lists (module docstring), or for a query of up to `SHORT` characters the best-known titles of the lengths
        that can match it; at most 2 * CANDIDATES."""
        if len(key) <= SHORT:
            pools = [self._short.get(length, ()) for length in range(1, 3 * len(key) + 1)]
            return np.unique(np.concatenate([np.asarray(pool, dtype=np.int64) for pool in pools]))
        codes = np.asarray(sorted(_code(gram) for gram in _grams(key)), dtype=np.int64)
        slots = np.minimum(np.searchsorted(self._vocabulary, codes), max(len(self._vocabulary) - 1, 0))
        ids = slots[self._vocabulary[slots] == codes] if len(self._vocabulary) else slots[:0]
        if not len(ids):
            return np.zeros(0, dtype=np.int64)
        sizes = self._starts[ids + 1] - self._starts[ids]
        ids, sizes = ids[np.argsort(sizes, kind="stable")], np.sort(sizes, kind="stable")
        full = max(1, int(np.searchsorted(np.cumsum(sizes), READ, side="right")))  # the rarest list at least
        rare = self._most_shared(self._starts[ids[:full]], np.minimum(sizes[:full], READ))
        known = self._most_shared(self._starts[ids], np.minimum(sizes, HEAD))
        return np.union1d(rare, known)

    def _most_shared(self, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """The CANDIDATES rows that occur in the most of the lists' heads (a list's `size` first rows from `start`),
        the better known first among equals."""
        heads = zip(starts.tolist(), sizes.tolist(), strict=True)
        found = np.concatenate([self._postings[start : start + size] for start, size in heads])
        rows, shared = np.unique(found, return_counts=True)
        return rows[np.lexsort((rows, -self._notability[rows], -shared))][:CANDIDATES]


def _key_grams(keys: Sequence[str], chunk: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """(row, trigram code) of each distinct trigram of each key, computed on arrays of code points, a chunk of keys
    at a time (a loop over the keys' trigrams in Python costs seconds at a million titles)."""
    rows, grams = [], []
    for start in range(0, len(keys), chunk):
        block = [f" {key} " for key in keys[start : start + chunk]]
        width = max(map(len, block), default=0)
        if width < GRAM:
            continue
        points = np.array(block, dtype=f"<U{width}").view(np.uint32).reshape(len(block), width).astype(np.int64)
        lengths = np.fromiter(map(len, block), np.int64, len(block))
        codes = (points[:, :-2] << 42) | (points[:, 1:-1] << 21) | points[:, 2:]  # a code point fits in 21 bits
        codes[np.arange(width - GRAM + 1) >= (lengths - GRAM + 1)[:, None]] = _PAST_END
        codes.sort(axis=1)
        # each trigram once per key: the first of each run of equal codes in the sorted row, none past the end
        first = np.ones(codes.shape, dtype=bool)
        first[:, 1:] = codes[:, 1:] != codes[:, :-1]
        keep = first & (codes != _PAST_END)
        rows.append(np.broadcast_to(np.arange(start, start + len(block))[:, None], codes.shape)[keep])
        grams.append(codes[keep])
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(rows), np.concatenate(grams)


def _code(gram: str) -> int:
    """A trigram as one number: its three code points of 21 bits each, as `_key_grams` makes it."""
    first, second, third = map(ord, gram)
    return (first << 42) | (second << 21) | third


def _grams(key: str) -> set[str]:
    """The distinct trigrams of a key padded with a space at each end ("heat": " he", "hea", "eat", "at ")."""
    padded = f" {key} "
    return {padded[i : i + GRAM] for i in range(len(padded) - GRAM + 1)}
