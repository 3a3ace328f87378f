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
    from hf_reference import save_random_model
    from transformers import LlamaConfig

    out = tmp_path_factory.mktemp("tiny-llama")
    save_random_model(LlamaConfig(**TINY_LLAMA), out)
    return out


@pytest.fixture
def register_plugin():
    """register_plugin(name, models=fn, backends=fn) adds a throw-away plugin whose hooks call fn(registry);
    every plugin added is unregistered when the test ends, whatever happens."""
    pm = get_plugin_manager()
    added = []

    def register(name, models=None, backends=None):
        plugin = types.SimpleNamespace()
        if models is not None:
            plugin.zooinfer_register_models = hookimpl(models)
        if backends is not None:
            plugin.zooinfer_register_backends = hookimpl(backends)
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


@pytest.fixture(scope="session")
def tiny_llama_text_dir(tiny_llama_dir, tmp_path_factory):
    """The tiny random llama with SmolLM2's tokenizer next to it (its ids below 128 are single bytes and
    common letters), so text prompts, detokenizing and stop strings run on a model that takes milliseconds."""
    import shutil

    from transformers import AutoTokenizer

    from zooinfer.model_source import resolve_model

    out = tmp_path_factory.mktemp("tiny-llama-text")
    for f in tiny_llama_dir.iterdir():
        shutil.copy(f, out / f.name)
    AutoTokenizer.from_pretrained(resolve_model(None)).save_pretrained(out)
    return out
