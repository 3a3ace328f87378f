"""On a GPU: the triton backend against the torch backend in bf16, CUDA graphs against eager, memory sizing.
Skipped where there is no CUDA device (CI has none); run on a GPU machine with `pytest tests/test_gpu.py`."""
import pytest
import torch

from zooinfer import LLM, SamplingParams
from zooinfer.errors import ZooinferError
from zooinfer.plugin_manager import model_registry
from zooinfer.testing import save_random_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SHAPES = {
    "llama": dict(vocab_size=1024, hidden_size=512, intermediate_size=1376, num_hidden_layers=4,
                  num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=2048),
    "bloom": dict(vocab_size=1024, hidden_size=512, n_layer=4, n_head=8),
}
PROMPTS = [list(range(5, 5 + n)) for n in (3, 17, 130, 700)]
PARAMS = SamplingParams(max_new_tokens=24, temperature=0, logprobs=2, ignore_eos=True)


@pytest.fixture(scope="module", params=[a for a in SHAPES if a in model_registry()])
def checkpoint(request, tmp_path_factory):
    from transformers import AutoConfig
    path = tmp_path_factory.mktemp(request.param)
    config = AutoConfig.for_model(request.param, **SHAPES[request.param])
    config.torch_dtype = "bfloat16"
    save_random_model(config, path)
    return path


def assert_same_until_near_tie(reference, candidate, tie=0.1, logprob_atol=0.08):
    """Equal greedy tokens until the reference's top two are within `tie` (bf16 rounding can flip those),
    and the chosen tokens' logprobs within bf16 tolerance up to there."""
    for ref, out in zip(reference, candidate):
        for step, (a, b) in enumerate(zip(ref.token_ids, out.token_ids)):
            top = sorted(ref.logprobs[step].values(), reverse=True)
            if a != b:
                assert top[0] - top[1] < tie, f"step {step}: {b} vs reference {a}, margin {top[0] - top[1]:.3f}"
                break
            assert abs(ref.logprobs[step][a] - out.logprobs[step][b]) < logprob_atol


def test_triton_matches_torch_backend(checkpoint):
    reference = LLM(str(checkpoint), device="cuda", dtype="bfloat16", backend="torch", enforce_eager=True,
                    kv_cache_tokens=8192).generate(prompt_token_ids=PROMPTS, sampling_params=PARAMS)
    triton = LLM(str(checkpoint), device="cuda", dtype="bfloat16", backend="triton", enforce_eager=True,
                 kv_cache_tokens=8192).generate(prompt_token_ids=PROMPTS, sampling_params=PARAMS)
    assert_same_until_near_tie(reference, triton)


def test_graphs_match_eager_and_count(checkpoint):
    eager = LLM(str(checkpoint), device="cuda", dtype="bfloat16", enforce_eager=True, kv_cache_tokens=8192)
    graphed = LLM(str(checkpoint), device="cuda", dtype="bfloat16", kv_cache_tokens=8192)
    want = eager.generate(prompt_token_ids=PROMPTS, sampling_params=PARAMS)
    got = graphed.generate(prompt_token_ids=PROMPTS, sampling_params=PARAMS)
    assert [o.token_ids for o in got] == [o.token_ids for o in want]
    stats = graphed.get_stats()["cuda_graph"]
    assert stats["enabled"] and stats["recordings"] >= 1 and stats["replays"] >= PARAMS.max_new_tokens - 1
    assert stats["cache_hits"] >= 1 and stats["cache_size"] == len(stats["cached_shapes"]) == stats["recordings"]
    assert stats["hit_rate"] == stats["cache_hits"] / (stats["cache_hits"] + stats["cache_misses"])
    graphed.clear_cache()
    assert graphed.get_stats()["cuda_graph"]["cache_size"] == 0
    again = graphed.generate(prompt_token_ids=PROMPTS, sampling_params=PARAMS)
    assert [o.token_ids for o in again] == [o.token_ids for o in want]
    assert graphed.get_stats()["cuda_graph"]["recordings"] > stats["recordings"]
    assert not eager.get_stats()["cuda_graph"]["enabled"] and eager.get_stats()["cuda_graph"]["recordings"] == 0


def test_graphs_switched_at_run_time(checkpoint):
    """Off: steps run eagerly and nothing is counted; on again: the kept graphs replay, outputs unchanged."""
    llm = LLM(str(checkpoint), device="cuda", dtype="bfloat16", kv_cache_tokens=8192, enforce_eager=True)
    want = llm.generate(prompt_token_ids=PROMPTS, sampling_params=PARAMS)
    assert llm.get_stats()["cuda_graph"]["replays"] == 0
    llm.set_cuda_graph_enabled(True)
    assert [o.token_ids for o in llm.generate(prompt_token_ids=PROMPTS, sampling_params=PARAMS)] == \
        [o.token_ids for o in want]
    first = llm.get_stats()["cuda_graph"]
    assert first["enabled"] and first["recordings"] >= 1 and first["replays"] >= 1
    llm.set_cuda_graph_enabled(False)
    llm.generate(prompt_token_ids=PROMPTS, sampling_params=PARAMS)
    off = llm.get_stats()["cuda_graph"]
    assert not off["enabled"] and off["replays"] == first["replays"] and off["cache_size"] == first["cache_size"]
    llm.set_cuda_graph_enabled(True)
    llm.generate(prompt_token_ids=PROMPTS, sampling_params=PARAMS)
    on = llm.get_stats()["cuda_graph"]
    assert on["recordings"] == first["recordings"] and on["cache_hits"] > first["cache_hits"]


def test_pool_sized_from_free_memory(checkpoint):
    llm = LLM(str(checkpoint), device="cuda", dtype="bfloat16", gpu_memory_fraction=0.5)
    free, total = torch.cuda.mem_get_info()
    pool_bytes = llm.model.kv_cache.buffers.numel() * 2
    assert llm.model.kv_cache.num_slots > 8192 and pool_bytes < 0.5 * total
    out = llm.generate(prompt_token_ids=PROMPTS, sampling_params=PARAMS)
    assert all(len(o.token_ids) == PARAMS.max_new_tokens for o in out)


def test_too_little_memory_fails_at_start_with_advice(checkpoint):
    with pytest.raises(ZooinferError, match="max_model_len") as exc:
        LLM(str(checkpoint), device="cuda", dtype="bfloat16", gpu_memory_fraction=0.0001)
    assert "\n" not in str(exc.value) and "gpu_memory_fraction" in str(exc.value)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_pool_shorter_than_the_context(checkpoint, backend):
    """A pool of fewer slots than max_position_embeddings: the request table is only as wide as the pool, decode
    graphs stop at that width, and graphed steps still give the eager tokens."""
    kwargs = dict(device="cuda", dtype="bfloat16", backend=backend, kv_cache_tokens=1024)
    eager = LLM(str(checkpoint), enforce_eager=True, **kwargs)
    graphed = LLM(str(checkpoint), **kwargs)
    assert graphed.max_model_len == 2048 and graphed.model.kv_cache.req_to_token.shape[1] == 1024
    assert graphed.engine.graphs.len_buckets[-1] == 1024
    want = eager.generate(prompt_token_ids=PROMPTS, sampling_params=PARAMS)
    got = graphed.generate(prompt_token_ids=PROMPTS, sampling_params=PARAMS)
    if backend == "triton":  # its decode attention splits by key position alone: bitwise the eager result
        assert [o.token_ids for o in got] == [o.token_ids for o in want]
    else:  # the reference's attention matmuls take the graph's padded length: cuBLAS may round differently
        assert_same_until_near_tie(want, got)


def test_preemption_and_prefix_caching_keep_graphed_outputs(checkpoint):
    """A pool too small for the batch (preemption), a shared prefix (cache hits) and chunked prefill, with CUDA
    graphs and the overlapped decode: the tokens of a roomy eager engine without any of them."""
    prompts = PROMPTS[:3] + [PROMPTS[2][:100] + [7, 8]]
    plain = LLM(str(checkpoint), device="cuda", dtype="bfloat16", enforce_eager=True, kv_cache_tokens=8192,
                enable_prefix_caching=False).generate(prompt_token_ids=prompts, sampling_params=PARAMS)
    tight = LLM(str(checkpoint), device="cuda", dtype="bfloat16", kv_cache_tokens=200, max_prefill_tokens=64)
    assert_same_until_near_tie(plain, tight.generate(prompt_token_ids=prompts, sampling_params=PARAMS))
    stats = tight.get_stats()
    assert stats["preemptions"] > 0 and stats["prefix_cache"]["hit_tokens"] > 0
    assert stats["cuda_graph"]["replays"] > 0
