"""Incremental detokenizing equals a full decode on the real SmolLM2 tokenizer, token by token: multi-byte
UTF-8 (accents, CJK, emoji split over byte tokens), runs of spaces, newlines and tabs."""
import pytest
from transformers import AutoTokenizer

from zooinfer.engine.detokenizer import Detokenizer
from zooinfer.model_source import resolve_model

TEXTS = ["The capital of France is Paris.", "naïve café, façade — Ωμέγα", "日本語のテキストと中文",
         "emoji 🙂👍🏽🇫🇷 family 👨‍👩‍👧 end", "  two  spaces\n\nnew\tlines   trailing   ",
         "code: def f(x):\n    return x ** 2  # ok", "<|im_start|>special tokens<|im_end|> in text"]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model(None))


@pytest.mark.parametrize("text", TEXTS)
def test_incremental_equals_full_decode(tokenizer, text):
    ids = tokenizer.encode(text)
    detok = Detokenizer(tokenizer, [])
    for i, token in enumerate(ids):
        assert not detok.add(token)
        full = tokenizer.decode(ids[:i + 1], skip_special_tokens=True)
        assert full.startswith(detok.text)  # never ahead of the full decode, never wrong
        assert len(full) - len(detok.text) <= 8 or full.endswith("\ufffd")  # held back only while incomplete
    detok.flush()
    assert detok.text == tokenizer.decode(ids, skip_special_tokens=True)


def test_stop_string_across_tokens_is_cut_and_held_back(tokenizer):
    ids = tokenizer.encode("The capital of France is Paris. It is big.")
    detok = Detokenizer(tokenizer, [" Paris."])
    shown = []
    for token in ids:
        if detok.add(token):
            break
        shown.append(detok.take(final=False))
    assert detok.text == "The capital of France is"
    assert "".join(shown) + detok.take(final=True) == detok.text  # nothing handed out was taken back
    assert "".join(shown) == "The capital of France is"  # " Paris" was held back while it could become " Paris."
