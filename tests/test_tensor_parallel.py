"""Tensor-parallel splits on CPU ranks (gloo): KV heads fewer than ranks are replicated, as many are split; every
rank's logits equal one rank's. Impossible splits are refused at construction with a one-line error."""
import multiprocessing
import socket
from pathlib import Path

import pytest
import torch

from zooinfer.engine.loading import read_config
from zooinfer.errors import ZooinferError
from zooinfer.models.llama import LlamaTpPartModel
from zooinfer.plugin_manager import model_registry
from zooinfer.plugins.torch_backend.backend import TorchBackend
from zooinfer.testing import save_random_model
from zooinfer.tools.compare import zooinfer_greedy

pytestmark = pytest.mark.usefixtures("torch_single_thread")
PROMPTS, STEPS = [[3, 17, 92, 5, 44, 8, 150, 21, 9], list(range(20, 40))], 4


def build(model_dir, rank=0, world=1, model_type="llama"):
    return model_registry().get(model_type)(model_dir, read_config(Path(model_dir)), TorchBackend(torch.device("cpu")),
                                            torch.float32, kv_cache_tokens=256, max_requests=len(PROMPTS),
                                            tp_rank=rank, world_size=world)


def _rank(model_dir, model_type, rank, world, port, results):
    """One spawned rank: its slice of the weights, gloo all-reduces. Results go back as plain lists, which the
    queue pickles whole (tensors would be shared through file descriptors that die with this process)."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        run = zooinfer_greedy(build(model_dir, rank, world, model_type), PROMPTS, STEPS)
        results.put((rank, run.tokens, torch.stack(run.logits).tolist()))
    except Exception as exc:  # reported to the parent, which would otherwise wait for its timeout
        results.put((rank, None, f"{type(exc).__name__}: {exc}"))
    finally:
        dist.destroy_process_group()


def run_ranks(model_dir, model_type, world):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = multiprocessing.get_context("spawn" if torch.cuda.is_initialized() else "fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(str(model_dir), model_type, rank, world, port, results))
             for rank in range(world)]
    for p in procs:
        p.start()
    try:
        return sorted(results.get(timeout=120) for _ in procs)
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()


TP_CASES = {  # model type, tiny config, changes: kv=1 replicated on both ranks (with its bias), kv=2 split
    "llama-kv1-bias": ("llama", "gqa", {"num_key_value_heads": 1, "attention_bias": True}),
    "llama-kv2": ("llama", "gqa", {}),
    "qwen2-kv1-window": ("qwen2", "mqa_tied", {"use_sliding_window": True, "sliding_window": 6,
                                               "max_window_layers": 1}),
    "qwen3-kv1-qk-norm": ("qwen3", "head_dim_not_hidden_over_heads", {}),
    "gemma2-kv2-sandwich-window-softcap": ("gemma2", "gqa_all_sliding", {}),
    "phi3-kv1-fused-blocks": ("phi3", "gqa", {"num_key_value_heads": 1}),  # qkv_proj taken apart, KV head copied
    "gpt_neox-parallel-residual": ("gpt_neox", "parallel_residual", {}),  # per-head fused qkv, two all-reduces
    "gpt2-conv1d-blocks": ("gpt2", "base", {}),  # Conv1D c_attn taken apart per block, wpe
}


@pytest.mark.parametrize("case", TP_CASES)
def test_tp2_matches_one_rank(case, tmp_path):
    model_type, name, change = TP_CASES[case]
    cls = model_registry().get(model_type)
    save_random_model(cls.hf_config_class_object()(**{**cls.tiny_configs[name], **change}), tmp_path)
    single = zooinfer_greedy(build(tmp_path, model_type=model_type), PROMPTS, STEPS)
    for rank, tokens, logits in run_ranks(tmp_path, model_type, 2):
        assert tokens is not None, logits
        assert tokens == single.tokens, rank
        torch.testing.assert_close(torch.tensor(logits), torch.stack(single.logits), atol=1e-5, rtol=0)


@pytest.mark.parametrize("change, world, culprits", [
    (dict(hidden_size=48, num_attention_heads=6, num_key_value_heads=3), 2, ["num_key_value_heads=3", "tp=2"]),
    (dict(hidden_size=48, num_attention_heads=6, num_key_value_heads=2), 4, ["num_attention_heads=6", "tp=4"]),
    (dict(intermediate_size=111), 2, ["intermediate_size=111", "tp=2"]),
])
def test_impossible_splits_are_refused_before_loading(change, world, culprits, tiny_llama_dir):
    config = {**read_config(tiny_llama_dir), **change}
    with pytest.raises(ZooinferError) as exc:
        LlamaTpPartModel(tiny_llama_dir, config, TorchBackend(torch.device("cpu")), torch.float32, kv_cache_tokens=64,
                         max_requests=1, tp_rank=0, world_size=world)
    assert "\n" not in str(exc.value) and all(c in str(exc.value) for c in culprits), str(exc.value)
