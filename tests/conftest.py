"""Shared fixtures: a tiny random llama checkpoint and throw-away plugin registration."""
import types

import pytest

from zooinfer import hookimpl
from zooinfer.plugin_manager import get_plugin_manager

TINY_LLAMA = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=64)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    """A tiny random llama checkpoint (config.json + model.safetensors, no tokenizer). Treat it as read-only."""
    from zooinfer.testing import save_random_model
    from transformers import LlamaConfig

    out = tmp_path_factory.mktemp("tiny-llama")
    save_random_model(LlamaConfig(**TINY_LLAMA), out)
    return out


@pytest.fixture
def register_plugin():
    """register_plugin(name, models=fn, backends=fn, ops=fn, weight_transforms=fn, quantizations=fn) adds a
    throw-away plugin whose
    hooks call fn(registry); every plugin added is unregistered when the test ends, whatever happens."""
    pm = get_plugin_manager()
    added = []

    def register(name, models=None, backends=None, ops=None, weight_transforms=None, quantizations=None):
        plugin = types.SimpleNamespace()
        for hook, fn in (("models", models), ("backends", backends), ("ops", ops),
                         ("weight_transforms", weight_transforms), ("quantizations", quantizations)):
            if fn is not None:
                setattr(plugin, f"zooinfer_register_{hook}", hookimpl(fn))
        added.append(pm.register(plugin, name=name))
        return plugin

    try:
        yield register
    finally:
        for name in added:
            pm.unregister(name=name)


@pytest.fixture(scope="module")
def torch_single_thread():
    """Tiny models run far faster on one intra-op thread, above all on a busy machine (threads oversubscribe)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)



CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<assistant>{% endif %}")


@pytest.fixture(scope="session")
def tiny_llama_text_dir(tmp_path_factory):
    """A tiny random llama with a byte-level tokenizer of 256 tokens (one per byte, no merges; a multi-byte
    character spans tokens) and a chat template: text in and out on a model that takes milliseconds."""
    from zooinfer.testing import save_random_model
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    out = tmp_path_factory.mktemp("tiny-llama-text")
    save_random_model(LlamaConfig(**{**TINY_LLAMA, "vocab_size": 256, "eos_token_id": 0}), out, seed=1)
    byte_chars = bytes_to_unicode()
    tok = Tokenizer(models.BPE(vocab={byte_chars[b]: b for b in range(256)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=byte_chars[0])
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    return out
