"""GGUF Q4_0 / Q4_1 / Q8_0 tensors loaded straight into QuantizedWeights (no float detour, no rounding), on a tiny
synthetic llama GGUF; the real SmolLM2 file's blocks too."""
import logging

import gguf
import numpy as np
import pytest
import torch

from zooinfer import LLM, SamplingParams, gguf_convert
from zooinfer.errors import ZooinferError
from zooinfer.quantization import QuantizedWeight
from zooinfer.quantization.gguf_blocks import read_blocks
from zooinfer.tasks.score import prompt_logits

pytestmark = pytest.mark.usefixtures("torch_single_thread")
Q = gguf.GGMLQuantizationType
# GGUF name -> (HF shape, stored type): a mix of every block type read as is, and F32 norms.
TENSORS = {"token_embd.weight": ((64, 64), Q.Q8_0), "output_norm.weight": ((64,), Q.F32),
           "blk.0.attn_q.weight": ((64, 64), Q.Q4_1), "blk.0.attn_k.weight": ((32, 64), Q.Q4_1),
           "blk.0.attn_v.weight": ((32, 64), Q.Q4_1), "blk.0.attn_output.weight": ((64, 64), Q.Q4_0),
           "blk.0.ffn_gate.weight": ((128, 64), Q.Q4_1), "blk.0.ffn_up.weight": ((128, 64), Q.Q4_1),
           "blk.0.ffn_down.weight": ((64, 128), Q.Q8_0), "blk.0.attn_norm.weight": ((64,), Q.F32),
           "blk.0.ffn_norm.weight": ((64,), Q.F32)}


def write_gguf(path):
    """A 1-layer llama (hidden 64, 4 heads of 16, 2 kv heads) with quantized linear weights; returns each tensor's
    dequantized values as stored (rows still permuted for q and k)."""
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), "llama")
    for key, value in {"embedding_length": 64, "block_count": 1, "feed_forward_length": 128,
                       "attention.head_count": 4, "attention.head_count_kv": 2, "context_length": 64}.items():
        w.add_uint64(f"llama.{key}", value)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    stored = {}
    for name, (shape, kind) in TENSORS.items():
        values = rng.standard_normal(shape).astype(np.float32) * (1.0 if len(shape) == 1 else 0.2)
        data = values if kind == Q.F32 else gguf.quants.quantize(values, kind)
        w.add_tensor(name, data, raw_dtype=kind)
        stored[name] = values if kind == Q.F32 else gguf.quants.dequantize(data, kind).reshape(shape)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    return stored


@pytest.fixture
def tiny_gguf(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOINFER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(gguf_convert, "_save_tokenizer", lambda src, out: None)
    path = tmp_path / "tiny.gguf"
    return path, write_gguf(path)


def logits(llm, ids=(3, 1, 4, 1, 5, 9, 2, 6)):
    return prompt_logits(llm, list(ids))


def test_int4_reads_every_block_as_stored_and_matches_the_float_model(tiny_gguf):
    path, stored = tiny_gguf
    float_llm, int4 = LLM(str(path), kv_cache_tokens=32), LLM(str(path), quantization="int4", kv_cache_tokens=32)
    layer, top = int4.model.trans_layers_weight[0], int4.model.pre_post_weight
    float_layer = float_llm.model.trans_layers_weight[0]
    for attr, method in (("qkv_proj", "int4"), ("o_proj", "int4"), ("gate_up_proj", "int4"),
                         ("down_proj", "int8")):  # the Q8_0 down projection stays int8 under int4
        weight = getattr(layer, attr)
        assert isinstance(weight, QuantizedWeight) and (weight.method, weight.group_size) == (method, 32), attr
        # The same values as the float conversion (un-permuted rows included): nothing was rounded.
        assert torch.equal(weight.dequantize(), getattr(float_layer, attr)), attr
    assert isinstance(top.lm_head, QuantizedWeight) and top.lm_head.method == "int8"  # the tied Q8_0 embedding
    assert torch.equal(top.embed_tokens, torch.from_numpy(stored["token_embd.weight"]))
    torch.testing.assert_close(logits(int4), logits(float_llm), rtol=0, atol=1e-4)


def test_int8_of_q4_blocks_requantizes_with_one_log_line(tiny_gguf, caplog):
    path, _ = tiny_gguf
    with caplog.at_level(logging.INFO, logger="zooinfer.gguf_convert"):
        llm = LLM(str(path), quantization="int8", kv_cache_tokens=32)
    lines = [r.getMessage() for r in caplog.records if "requantized" in r.getMessage()]
    assert lines == ["tiny.gguf: Q4_0/Q4_1 tensors are dequantized here and requantized as int8 at load"]
    layer = llm.model.trans_layers_weight[0]
    assert (layer.qkv_proj.method, layer.qkv_proj.group_size) == ("int8", 64)  # per channel, requantized
    assert (layer.down_proj.method, layer.down_proj.group_size) == ("int8", 32)  # Q8_0 kept as stored
    float_llm = LLM(str(path), kv_cache_tokens=32)
    # Logits of order 3: one more int8 rounding of the Q4 values moved them by at most 0.09-0.13 here.
    assert (logits(llm) - logits(float_llm)).abs().max() < 0.25


def test_each_quantization_has_its_own_cache_entry(tiny_gguf, tmp_path):
    path, _ = tiny_gguf
    for quantization in (None, "int4", "int8"):
        LLM(str(path), quantization=quantization, kv_cache_tokens=32)
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir() if p.is_dir())
    assert [e.split("-float32")[1] for e in entries] == ["-int4-v2", "-int8-v2", "-v2"]


def test_smollm2_blocks_read_without_rounding():
    from zooinfer.model_source import default_gguf
    reader = gguf.GGUFReader(default_gguf())
    kinds = {}
    for t in reader.tensors:
        if t.tensor_type.name in ("Q4_1", "Q8_0") and t.tensor_type.name not in kinds:
            kinds[t.tensor_type.name] = t
    assert set(kinds) == {"Q4_1", "Q8_0"}  # the shipped file: Q4_1 layers, a Q8_0 embedding
    for name, t in kinds.items():
        shape = tuple(int(d) for d in reversed(t.shape))
        rows = slice(0, 64)  # a few rows are enough
        expected = gguf.quants.dequantize(t.data[rows], t.tensor_type).reshape(64, shape[1])
        weight = read_blocks(t.data[rows], name, (64, shape[1]))
        assert np.array_equal(weight.dequantize().numpy(), expected), name


def test_the_default_model_runs_int4_straight_from_its_blocks():
    int4, float_llm = LLM(quantization="int4", kv_cache_tokens=128), LLM(kv_cache_tokens=128)
    lm_head, down = int4.model.pre_post_weight.lm_head, int4.model.trans_layers_weight[3].down_proj
    assert (lm_head.method, lm_head.group_size, down.method, down.group_size) == ("int8", 32, "int4", 32)
    assert torch.equal(down.dequantize(), float_llm.model.trans_layers_weight[3].down_proj)  # the Q4_1 values
    ids = int4.tokenizer.encode(int4.chat_prompt("What is the capital of France?"))
    torch.testing.assert_close(prompt_logits(int4, ids), prompt_logits(float_llm, ids), rtol=0, atol=1e-3)
    out = int4.generate(int4.chat_prompt("What is the capital of France?"),
                        SamplingParams(max_new_tokens=12, temperature=0))[0]
    assert "Paris" in out.text


def test_tensor_parallel_ranks_quantize_their_own_slices(tiny_gguf):
    from zooinfer.engine.loading import read_config
    from zooinfer.model_source import resolve_model
    from zooinfer.plugin_manager import model_registry
    from zooinfer.plugins.torch_backend.backend import TorchBackend
    from zooinfer.quantization import get_quantization

    path, _ = tiny_gguf
    ops = TorchBackend(torch.device("cpu"))

    def rank(r, world_size):
        quantization = get_quantization("int4")
        model_dir = resolve_model(str(path), "float32", quantization)
        config = read_config(model_dir)
        return model_registry().get(config["model_type"])(model_dir, config, ops, torch.float32, 16, 1, tp_rank=r,
                                                          world_size=world_size, quantization=quantization)

    full = LLM(str(path), kv_cache_tokens=16).model.trans_layers_weight[0]
    halves = [rank(r, 2).trans_layers_weight[0] for r in (0, 1)]
    # o (Q4_0) and down (Q8_0) split their inputs, 64 -> 32 and 128 -> 64 a rank: whole groups, taken as stored.
    assert torch.equal(torch.cat([h.o_proj.dequantize() for h in halves], dim=1), full.o_proj)
    assert torch.equal(torch.cat([h.down_proj.dequantize() for h in halves], dim=1), full.down_proj)
    # gate/up (Q4_1) split their rows: each rank holds its half of the gate rows, then of the up rows.
    assert torch.equal(torch.cat([h.gate_up_proj.dequantize()[:64] for h in halves]), full.gate_up_proj[:128])
    with pytest.raises(ZooinferError, match=r"o_proj.weight: a int4 weight of shape \(64, 64\) with group size 32 "
                                            r"cannot be split into 4 equal parts along dim 1 \(whole groups only\)"):
        rank(0, 4)  # 16 inputs a rank: half a group
