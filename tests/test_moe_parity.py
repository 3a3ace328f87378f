"""Mixtral and Qwen3-MoE against Hugging Face transformers over every tiny config the families declare, float32:
through the torch backend and through the triton backend (on CPU under the Triton interpreter). Then transformers'
fused expert layout, batching, a failure inside the op, tensor-parallel expert shards, and the config errors."""
import pytest
import torch

import test_tensor_parallel as tp
from zooinfer.testing import assert_batch_equals_single, assert_greedy_matches, save_random_model
from triton_mode import import_kernels, interpreter
from zooinfer import LLM, SamplingParams
from zooinfer.engine.loading import read_config
from zooinfer.errors import ZooinferError
from zooinfer.models.mixtral.model import MixtralTpPartModel
from zooinfer.models.qwen3_moe.model import Qwen3MoeTpPartModel
from zooinfer.plugin_manager import model_registry
from zooinfer.plugins.torch_backend.backend import TorchBackend
from zooinfer.tools.compare import zooinfer_greedy

pytestmark = pytest.mark.usefixtures("torch_single_thread")

FAMILIES = (MixtralTpPartModel, Qwen3MoeTpPartModel)
CASES = [pytest.param(cls, name, id=f"{cls.hf_config_class.removesuffix('Config')}-{name}")
         for cls in FAMILIES for name in cls.tiny_configs]
PROMPTS = [[3, 17, 92, 5, 44, 8, 150, 21, 9], [7, 7], list(range(20, 60))]  # the last one passes any tiny window
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def save_tiny(cls, name, path, **overrides):
    config = cls.hf_config_class_object()(**{**cls.tiny_configs[name], **overrides})
    return save_random_model(config, path)


def assert_matches(hf, llm, steps, prompts=PROMPTS):
    params = SamplingParams(max_new_tokens=steps, temperature=0, logprobs=0, ignore_eos=True)
    for prompt, out in zip(prompts, llm.generate(prompt_token_ids=prompts, sampling_params=params)):
        assert len(out.token_ids) == steps
        assert_greedy_matches(hf, prompt, out)  # the reference runs on the CPU in float32


@pytest.mark.parametrize("cls, name", CASES)
def test_torch_backend_matches_transformers(cls, name, tmp_path):
    hf = save_tiny(cls, name, tmp_path)
    llm = LLM(str(tmp_path), backend="torch", dtype="float32", strict=True)  # strict: every tensor read
    assert type(llm.model) is cls
    assert_matches(hf, llm, steps=10)


@pytest.mark.parametrize("cls, name", CASES)
def test_triton_backend_matches_transformers(cls, name, tmp_path):
    import_kernels()
    hf = save_tiny(cls, name, tmp_path)
    with interpreter():
        llm = LLM(str(tmp_path), device=DEVICE, backend="triton", dtype="float32", enforce_eager=True,
                  kv_cache_tokens=512, max_prefill_tokens=16)  # the longer prompt joins the other's decode batch
        assert llm.model.ops.name == "triton"
        # Few, short prompts and steps (the interpreter is slow); 16 tokens still pass the tiny windows.
        assert_matches(hf, llm, steps=3, prompts=[PROMPTS[0], PROMPTS[2][:16]])


@pytest.mark.parametrize("cls, name", [(MixtralTpPartModel, "top2_gqa"), (Qwen3MoeTpPartModel, "mlp_only_layers")],
                         ids=["mixtral", "qwen3_moe"])
def test_transformers_fused_expert_layout(cls, name, tmp_path):
    """save_pretrained(save_original_format=False) keeps transformers' in-memory layout: every expert of a layer
    in one gate_up_proj and one down_proj tensor, under mlp. It loads like the per-expert layout."""
    hf = save_tiny(cls, name, tmp_path / "per_expert")
    hf.save_pretrained(tmp_path / "fused", save_original_format=False)
    llm = LLM(str(tmp_path / "fused"), backend="torch", dtype="float32", strict=True)
    assert llm.model.config["fused_experts"]
    assert_matches(hf, llm, steps=6)


@pytest.mark.parametrize("cls", FAMILIES, ids=lambda cls: cls.hf_config_class)
def test_batch_equals_single(cls, tmp_path):
    """Different lengths, more requests than the batch holds, prefill split across steps: tokens routed to
    experts alongside other requests' tokens come out as they do alone."""
    save_tiny(cls, next(iter(cls.tiny_configs)), tmp_path)
    llm = LLM(str(tmp_path), backend="torch", kv_cache_tokens=512, max_batch_size=4, max_prefill_tokens=48)
    prompts = [PROMPTS[i % 3][: 5 + i] for i in range(7)]
    assert_batch_equals_single(llm, prompts, SamplingParams(max_new_tokens=8, temperature=0, ignore_eos=True,
                                                            logprobs=2))


@pytest.mark.parametrize("model_type, name, fused", [("mixtral", "top2_gqa", False), ("mixtral", "top2_gqa", True),
                                                    ("qwen3_moe", "mlp_only_layers", False)],
                         ids=["mixtral", "mixtral_fused_layout", "qwen3_moe"])
def test_tensor_parallel_expert_shards_match_single_rank(model_type, name, fused, tmp_path):
    """Two ranks each hold half of every expert's intermediate features (and of the dense MLP's); after the
    all-reduces each has the tp=1 logits."""
    hf = save_tiny(model_registry().get(model_type), name, tmp_path)
    if fused:
        hf.save_pretrained(tmp_path, save_original_format=False)
    single = zooinfer_greedy(tp.build(tmp_path, model_type=model_type), tp.PROMPTS, tp.STEPS)
    for rank, tokens, logits in tp.run_ranks(tmp_path, model_type, 2):
        assert tokens is not None, logits
        assert tokens == single.tokens, rank
        torch.testing.assert_close(torch.tensor(logits), torch.stack(single.logits), atol=1e-5, rtol=0)


def test_impossible_expert_split_is_refused(tmp_path):
    save_tiny(MixtralTpPartModel, "top2_gqa", tmp_path, intermediate_size=50)
    with pytest.raises(ZooinferError, match="intermediate_size=50 is not divisible by tp=4"):
        MixtralTpPartModel(tmp_path, read_config(tmp_path), TorchBackend(torch.device("cpu")), torch.float32,
                           kv_cache_tokens=64, max_requests=1, tp_rank=0, world_size=4)


@pytest.mark.parametrize("cls, overrides, culprit", [
    (MixtralTpPartModel, {"num_experts_per_tok": 5}, "num_experts_per_tok=5 is more than the 4 experts"),
    (MixtralTpPartModel, {"num_local_experts": 0}, "num_experts must be a positive integer"),
    (Qwen3MoeTpPartModel, {"decoder_sparse_step": 0}, "decoder_sparse_step must be a positive integer"),
    (Qwen3MoeTpPartModel, {"mlp_only_layers": "0"}, "mlp_only_layers must be a list of layer indexes"),
], ids=["top_k_above_experts", "no_experts", "sparse_step_0", "mlp_only_layers_str"])
def test_bad_config_is_one_clear_error(cls, overrides, culprit, tmp_path):
    import json

    save_tiny(cls, next(iter(cls.tiny_configs)), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **overrides}))
    with pytest.raises(ZooinferError, match=culprit):
        LLM(str(tmp_path), backend="torch")


def test_fused_layout_with_fewer_experts_than_the_config_is_named(tmp_path):
    import json

    hf = save_tiny(MixtralTpPartModel, "top2_gqa", tmp_path / "per_expert")
    hf.save_pretrained(tmp_path, save_original_format=False)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_local_experts": 5}))
    # The router's rows give the count away in the checkpoint's headers, before any expert tensor is read.
    with pytest.raises(ZooinferError, match=r"num_local_experts=5.*model\.layers\.0\.mlp\.gate\.weight has shape "
                                            r"\(4, 64\), expected \(5, 64\)"):
        LLM(str(tmp_path), backend="torch")
