"""BLOOM against Hugging Face transformers beyond the kit's whole-model suite (test_torch_model.py runs every tiny
config): ALiBi slopes, bigscience's unprefixed checkpoints, batching, tensor parallelism; float32."""
import json
import multiprocessing
import queue
import socket
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import BloomConfig
from transformers.models.bloom.modeling_bloom import build_alibi_tensor

from zooinfer import LLM, SamplingParams
from zooinfer.engine.loading import read_config
from zooinfer.models.bloom import BloomTpPartModel
from zooinfer.models.bloom.alibi import alibi_slopes, rank_alibi_slopes
from zooinfer.plugins.torch_backend.backend import TorchBackend
from zooinfer.testing import assert_batch_equals_single, assert_greedy_matches, save_random_model
from zooinfer.tools.compare import zooinfer_greedy

pytestmark = pytest.mark.usefixtures("torch_single_thread")

HEAD_DIM = 8
BASE = dict(vocab_size=160, n_layer=2, n_head=4)
POST = dict(apply_residual_connection_post_layernorm=True)
PROMPTS = [[3, 17, 92, 5, 44, 8, 150, 21, 9], [7, 7], list(range(20, 60))]
GREEDY = SamplingParams(max_new_tokens=10, temperature=0, logprobs=0, ignore_eos=True)


def bloom_config(**overrides) -> BloomConfig:
    cfg = {**BASE, **overrides}
    return BloomConfig(hidden_size=HEAD_DIM * cfg["n_head"], **cfg)


def assert_matches(hf, llm, prompts=PROMPTS):
    outputs = llm.generate(prompt_token_ids=prompts, sampling_params=GREEDY)
    for prompt, out in zip(prompts, outputs):
        assert len(out.token_ids) == GREEDY.max_new_tokens and out.finish_reason == "length"
        assert_greedy_matches(hf, prompt, out)


def test_alibi_slopes_match_transformers():
    for heads in range(1, 65):
        # transformers' bias for key positions 0 and 1 of one unpadded row: [heads, 1, 2], position 1 = slope
        hf_slopes = build_alibi_tensor(torch.ones(1, 2), heads, torch.float32)[:, 0, 1]
        assert torch.equal(alibi_slopes(heads).float(), hf_slopes), heads


@pytest.mark.parametrize("heads, tp", [(12, 2), (12, 3), (12, 4), (6, 2), (6, 3), (5, 5)])
def test_rank_slopes_cover_the_heads_in_order(heads, tp):
    ranks = [rank_alibi_slopes(heads, r, tp) for r in range(tp)]
    assert all(len(s) == heads // tp for s in ranks)
    assert torch.equal(torch.cat(ranks), alibi_slopes(heads))


def test_bigscience_layout(tmp_path):
    """bigscience's own checkpoints: tensor names without "transformer.", config keys n_embed /
    num_attention_heads / n_layer, no tie_word_embeddings key, seq_length as the context length."""
    hf = save_random_model(bloom_config(n_head=6), tmp_path / "hf")
    out = tmp_path / "bigscience"
    out.mkdir()
    tensors = load_file(tmp_path / "hf" / "model.safetensors")
    save_file({k.removeprefix("transformer."): v for k, v in tensors.items() if k != "lm_head.weight"},
              out / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    for new, old in (("n_embed", "hidden_size"), ("num_attention_heads", "n_head")):
        config[new] = config.pop(old)
    config.pop("tie_word_embeddings", None)
    config["seq_length"] = 96
    (out / "config.json").write_text(json.dumps(config))
    llm = LLM(str(out))
    assert llm.max_model_len == 96
    assert_matches(hf, llm)


def test_batch_equals_single(tmp_path):
    """Different lengths, more requests than the batch holds, prefill split across steps: same tokens as alone."""
    save_random_model(bloom_config(n_head=6, **POST), tmp_path)
    llm = LLM(str(tmp_path), kv_cache_tokens=512, max_batch_size=4, max_prefill_tokens=48)
    prompts = [PROMPTS[i % 3][: 5 + i] for i in range(7)]
    assert_batch_equals_single(llm, prompts, SamplingParams(max_new_tokens=12, temperature=0, ignore_eos=True,
                                                            logprobs=2))


def _greedy_on_rank(model_dir, rank, world, port, prompts, steps, results):
    """One tensor-parallel rank (a spawned process): its slice of the weights and slopes, gloo all-reduces."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    model = BloomTpPartModel(model_dir, read_config(Path(model_dir)), TorchBackend(torch.device("cpu")),
                             torch.float32, kv_cache_tokens=256, max_requests=len(prompts), tp_rank=rank,
                             world_size=world)
    run = zooinfer_greedy(model, prompts, steps)
    if results is None:
        return run
    # Plain lists, not a tensor: a tensor crosses the queue as a shared-memory handle that dies with this process,
    # which may exit before the parent reads it.
    results.put((rank, run.tokens, torch.stack(run.logits).tolist()))
    dist.destroy_process_group()


@pytest.mark.parametrize("heads, world", [(6, 2), (6, 3)])
def test_tensor_parallel_matches_single_rank(heads, world, tmp_path):
    """Every rank holds whole heads (with their slopes); after the all-reduces each rank has the tp=1 logits."""
    save_random_model(bloom_config(n_head=heads, **POST), tmp_path)
    prompts, steps = [PROMPTS[0], PROMPTS[2][:20]], 4
    single = _greedy_on_rank(str(tmp_path), 0, 1, None, prompts, steps, None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # A forked rank starts at once, where a spawned one re-imports torch; but a process that has used CUDA
    # (earlier GPU tests in the same run) must not fork.
    ctx = multiprocessing.get_context("spawn" if torch.cuda.is_initialized() else "fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_greedy_on_rank, args=(str(tmp_path), r, world, port, prompts, steps, results))
             for r in range(world)]
    for p in procs:
        p.start()
    outs, deadline = [], time.monotonic() + 120
    try:
        while len(outs) < world:  # fails at once when a rank dies, and after the deadline when one hangs
            try:
                outs.append(results.get(timeout=1))
            except queue.Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                assert not dead and time.monotonic() < deadline, f"ranks' exit codes: {[p.exitcode for p in procs]}"
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():  # a rank stuck waiting for a dead peer
                p.kill()
                p.join()
    assert all(p.exitcode == 0 for p in procs)
    for rank, tokens, logits in outs:
        assert tokens == single.tokens, rank
        torch.testing.assert_close(torch.tensor(logits), torch.stack(single.logits), atol=1e-5, rtol=0)
