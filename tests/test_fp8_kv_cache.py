"""The FP8 KV cache (kv_cache_dtype="fp8"): the e4m3 encoding and its error, the torch reference's ops against a
plain pool of the dequantized values, the pool's size, a tiny model's agreement with the plain cache, scheduling,
faults, bad input, and the Triton kernels (under the interpreter) on a whole model. Triton against torch op by op
is in the conformance kit (test_backend_conformance.py); on a GPU, test_gpu_fp8_kv.py."""
import pytest
import torch

from zooinfer import LLM, SamplingParams, cli
from zooinfer.errors import ZooinferError
from zooinfer.kv_cache import FP8, KVCache, dequantize_fp8, quantize_fp8
from zooinfer.plugins.torch_backend.backend import TorchBackend
from zooinfer.tasks.config import InferConfig
from zooinfer.testing.agreement import greedy_agreement
from zooinfer.testing.interpreter import triton_interpreter
from zooinfer.testing.test_ops import int32, make_pool, rand

pytestmark = pytest.mark.usefixtures("torch_single_thread")

OPS = TorchBackend(torch.device("cpu"))
PROMPTS = [[(7 * i + 3 * j) % 120 + 1 for j in range(5 + 2 * i)] for i in range(8)]
GREEDY = SamplingParams(max_new_tokens=16, temperature=0, ignore_eos=True)
SHARED = [PROMPTS[7] + [3, 4], PROMPTS[7] + [5]]  # with prefix caching on, both reuse PROMPTS[7]'s cached slots
SEEDED = [SamplingParams(max_new_tokens=16, temperature=1.0, top_p=0.9, seed=100 + i, ignore_eos=True)
          for i in range(len(PROMPTS))]


def one_line(exc, *culprits):
    message = str(exc.value)
    assert "\n" not in message and all(str(c) in message for c in culprits), message


def test_quantize_fp8_is_within_half_a_step_of_every_value():
    x = torch.randn(64, 4, 80) * torch.logspace(-4, 3, 64)[:, None, None]
    x[0, 1] = 0.0
    codes, scales = quantize_fp8(x)
    amax = x.abs().amax(dim=-1)
    assert codes.dtype == FP8 and scales.dtype == torch.float32 and scales.shape == (64, 4)
    assert scales[0, 1] == 1.0 and torch.equal(codes[0, 1].float(), torch.zeros(80))  # a zero row: no 0 / 0
    nonzero = amax > 0
    torch.testing.assert_close(scales[nonzero], amax[nonzero] / 448, rtol=1e-6, atol=0)
    assert torch.equal(codes.float().abs().amax(dim=-1)[nonzero], torch.full_like(amax[nonzero], 448.0))
    # Half a step of e4m3: 2**-4 of the value among normals, 2**-10 of the scale among subnormals.
    error = (dequantize_fp8(codes, scales, torch.float32) - x).abs()
    assert (error <= torch.maximum(x.abs() * 2**-4, scales[..., None] * 2**-10) * (1 + 1e-5)).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_reference_attention_on_fp8_equals_a_plain_pool_of_the_dequantized_values(dtype):
    """store_kv quantizes; both attentions then read exactly what dequantize_fp8 gives, rounded to the run dtype."""
    kv_heads, head_dim, seq_lens = 2, 32, [5, 19, 12]
    plain, req_to_token, b_req_idx = make_pool(seq_lens, kv_heads, head_dim, dtype)
    codes, scales = torch.empty(plain.shape, dtype=FP8), torch.ones(plain.shape[:2])
    slots = torch.randperm(plain.shape[0]).to(torch.int32)
    OPS.store_kv(codes, plain[:, :kv_heads], plain[:, kv_heads:], slots, scales)
    want_codes, want_scales = quantize_fp8(plain)
    assert torch.equal(codes[slots.long()].float(), want_codes.float())
    assert torch.equal(scales[slots.long()], want_scales)
    dequantized = dequantize_fp8(codes, scales, dtype)
    q = rand(25, 4, head_dim, dtype=dtype)  # 2 + 11 + 12 new tokens after cached prefixes of 3, 8 and 0
    context = (req_to_token, b_req_idx, int32([0, 2, 13]), int32(seq_lens), int32([3, 8, 0]), 12, 0.2)
    assert torch.equal(OPS.context_attention(q, codes, *context, kv_scales=scales),
                       OPS.context_attention(q, dequantized, *context))
    decode = (req_to_token, b_req_idx, int32(seq_lens), 19, 0.2)
    assert torch.equal(OPS.token_attention(q[:3], codes, *decode, kv_scales=scales),
                       OPS.token_attention(q[:3], dequantized, *decode))
    error = (dequantized[slots.long()].float() - plain.float()).abs().max() / plain.float().abs().max()
    assert 0 < error < 2**-4  # the pool did change the values, by less than half an e4m3 step


def test_pool_holds_about_twice_the_tokens_in_the_same_bytes(tiny_llama_dir):
    bf16, fp8 = (KVCache.bytes_per_token(32, 8, 128, dtype) for dtype in (torch.bfloat16, FP8))
    assert bf16 / fp8 == pytest.approx(256 / 132)  # 1.94x: 128 one-byte codes and a 4-byte scale per head
    llm = LLM(str(tiny_llama_dir), kv_cache_dtype="fp8", kv_cache_tokens=100)
    kv = llm.model.kv_cache
    assert kv.buffers.dtype == FP8 and kv.layer_scales(1).shape == (101, 4)
    assert kv.nbytes == 101 * llm.model.kv_bytes_per_token() == 101 * KVCache.bytes_per_token(2, 2, 16, FP8)
    stats = llm.get_stats()["kv_cache"]
    assert (stats["dtype"], stats["slots"], stats["bytes"]) == ("float8_e4m3fn", 100, kv.nbytes)
    plain = LLM(str(tiny_llama_dir), kv_cache_tokens=100)
    assert plain.get_stats()["kv_cache"]["dtype"] == "float32" and plain.model.kv_cache.layer_scales(0) is None


def test_greedy_agreement_with_the_plain_cache(tiny_llama_dir, record_property):
    """A tiny random model (flat logits, so near-ties are common) teacher-forced over 8 x 24 steps: at least 90%
    of the greedy tokens are the plain cache's (94% when written), flips only where the plain cache's top two
    are within 0.05 in log-probability, and every log-probability within 0.05 of the plain cache's."""
    agreement = greedy_agreement(LLM(str(tiny_llama_dir)), LLM(str(tiny_llama_dir), kv_cache_dtype="fp8"), PROMPTS,
                                 24)
    record_property("fp8_greedy_agreement", agreement.rate)
    print(f"\nfp8 vs float32 KV cache: {agreement}")
    assert agreement.steps == 8 * 24 and agreement.rate >= 0.9
    assert agreement.max_flip_margin < 0.05 and 0 < agreement.max_logprob_diff < 0.05


@pytest.fixture(scope="module")
def expected(tiny_llama_dir):
    llm = LLM(str(tiny_llama_dir), kv_cache_dtype="fp8", enable_prefix_caching=False)
    return {name: [o.token_ids for o in llm.generate(prompt_token_ids=prompts, sampling_params=params)]
            for name, prompts, params in (("greedy", PROMPTS, GREEDY), ("seeded", PROMPTS, SEEDED),
                                          ("shared", SHARED, GREEDY))}


@pytest.mark.parametrize("name, params", [("greedy", GREEDY), ("seeded", SEEDED)])
@pytest.mark.parametrize("engine_args, seen", [
    ({"kv_cache_tokens": 48, "enable_prefix_caching": False}, ["preemptions"]),
    ({"max_prefill_tokens": 4, "enable_prefix_caching": False}, []),  # every prompt in chunks
    ({"kv_cache_tokens": 48, "max_prefill_tokens": 6, "max_batch_size": 3}, ["preemptions", "prefix hits"]),
])
def test_scheduling_keeps_fp8_outputs(tiny_llama_dir, expected, name, params, engine_args, seen):
    """Preemption, chunked prefill and cached prefixes: the scales live with the slots, so outputs are those of a
    roomy FP8 engine without them, and the pool is whole afterwards."""
    llm = LLM(str(tiny_llama_dir), kv_cache_dtype="fp8", **engine_args)
    assert [o.token_ids for o in llm.generate(prompt_token_ids=PROMPTS, sampling_params=params)] == expected[name]
    assert [o.token_ids for o in llm.generate(prompt_token_ids=SHARED, sampling_params=GREEDY)] == expected["shared"]
    stats = llm.get_stats()
    counts = {"preemptions": stats["preemptions"], "prefix hits": stats["prefix_cache"]["hit_tokens"]}
    assert all(counts[what] > 0 for what in seen), counts
    llm.clear_cache()
    kv = llm.model.kv_cache
    assert (kv.free_slot_count, kv.free_row_count) == (kv.num_slots, kv.max_requests)


def test_a_failed_store_leaves_the_fp8_pool_whole(tiny_llama_dir, monkeypatch, expected):
    llm = LLM(str(tiny_llama_dir), kv_cache_dtype="fp8", enable_prefix_caching=False)
    real, calls = TorchBackend.store_kv, []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 7:
            raise RuntimeError("injected failure")
        return real(self, *args, **kwargs)
    monkeypatch.setattr(TorchBackend, "store_kv", failing)
    with pytest.raises(RuntimeError, match="injected failure"):
        llm.generate(prompt_token_ids=PROMPTS, sampling_params=GREEDY)
    monkeypatch.undo()
    kv = llm.model.kv_cache
    assert (kv.free_slot_count, kv.free_row_count) == (kv.num_slots, kv.max_requests)
    assert not llm.engine.requests and not llm.engine.scheduler.has_work()
    assert [o.token_ids for o in llm.generate(prompt_token_ids=PROMPTS, sampling_params=GREEDY)] == expected["greedy"]


def test_triton_kernels_follow_the_torch_backend_on_a_whole_model(tiny_llama_dir):
    """Under the Triton interpreter (no GPU here): store, prefill and decode kernels on an FP8 pool, chunked."""
    pytest.importorskip("triton")
    params = SamplingParams(max_new_tokens=5, temperature=0, ignore_eos=True, logprobs=1)
    prompts = PROMPTS[::3]
    want = LLM(str(tiny_llama_dir), kv_cache_dtype="fp8").generate(prompt_token_ids=prompts, sampling_params=params)
    with triton_interpreter():
        llm = LLM(str(tiny_llama_dir), kv_cache_dtype="fp8", backend="triton", max_prefill_tokens=8)
        got = llm.generate(prompt_token_ids=prompts, sampling_params=params)
    for ours, ref in zip(got, want):
        assert ours.token_ids == ref.token_ids
        assert max(abs(a[t] - b[t]) for a, b, t in zip(ours.logprobs, ref.logprobs, ref.token_ids)) < 1e-4


# -- bad input ------------------------------------------------------------------------------------------------
def test_unknown_kv_cache_dtype_is_named(tiny_llama_dir):
    with pytest.raises(ZooinferError) as exc:
        LLM(str(tiny_llama_dir), kv_cache_dtype="fp16")
    one_line(exc, "kv_cache_dtype", "'fp16'", "'fp8'")
    with pytest.raises(ZooinferError) as exc:
        InferConfig(kv_cache_dtype="int8")
    one_line(exc, "kv_cache_dtype", "'int8'")
    assert LLM(str(tiny_llama_dir), kv_cache_dtype="fp8").generate(prompt_token_ids=PROMPTS[:1],
                                                                  sampling_params=GREEDY)[0].token_ids


def test_cli_flag(tiny_llama_dir, capsys, monkeypatch):
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "error")
    for command in (["generate", "hi"], ["serve"], ["bench"]):
        args = cli.build_parser().parse_args([*command, "--kv-cache-dtype", "fp8"])
        assert cli.run_config(args).engine_kwargs()["kv_cache_dtype"] == "fp8"
    assert cli.main(["generate", "hi", "--model", str(tiny_llama_dir), "--kv-cache-dtype", "e5m2"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("zooinfer: error:") and "e5m2" in err


def test_bench_runs_on_the_fp8_cache(tiny_llama_dir):
    from zooinfer.tools.bench import bench

    cases, text = bench(str(tiny_llama_dir), "2", "4", "3", repeat=1, progress=False, kv_cache_dtype="fp8")
    assert "float8_e4m3fn KV cache" in text.splitlines()[0] and all(c.status == "ok" for c in cases)


def test_a_backend_that_cannot_read_fp8_is_refused(tiny_llama_dir, register_plugin):
    class NoScales(TorchBackend):  # written before FP8 pools: its decode attention takes no kv_scales
        name = "no-scales"
        is_reference = False

        def token_attention(self, q, kv_cache, req_to_token, b_req_idx, b_seq_len, max_len, scale,
                            alibi_slopes=None, sliding_window=None, softcap=None):
            return super().token_attention(q, kv_cache, req_to_token, b_req_idx, b_seq_len, max_len, scale,
                                           alibi_slopes, sliding_window, softcap)

    register_plugin("no-scales-plugin", backends=lambda registry: registry.register("no-scales", NoScales))
    with pytest.raises(ZooinferError) as exc:
        LLM(str(tiny_llama_dir), backend="no-scales", kv_cache_dtype="fp8")
    one_line(exc, "'no-scales'", "kv_cache_dtype='auto'")
    plain = LLM(str(tiny_llama_dir), backend="no-scales")  # a plain pool never passes kv_scales
    assert plain.generate(prompt_token_ids=PROMPTS[:2], sampling_params=GREEDY)[0].token_ids


def test_ops_name_a_missing_or_stray_kv_scales():
    codes, scales = quantize_fp8(rand(4, 2, 16))
    k, slots = rand(2, 1, 16), int32([0, 1])
    with pytest.raises(ValueError, match="float8_e4m3fn kv_cache takes float32 kv_scales"):
        OPS.store_kv(codes, k, k, slots)
    with pytest.raises(ValueError, match="float32 kv_cache takes no kv_scales"):
        OPS.token_attention(rand(1, 2, 16), rand(4, 2, 16), int32([[0, 1]]), int32([0]), int32([2]), 2, 1.0,
                            kv_scales=scales)
    pytest.importorskip("triton")
    with triton_interpreter():
        from zooinfer.plugins.triton_backend.backend import TritonBackend
        tri = TritonBackend(torch.device("cpu"))
        with pytest.raises(ValueError, match="needs its kv_scales"):
            tri.store_kv(codes, k, k, slots)
        with pytest.raises(ValueError, match="kv_scales has shape"):
            tri.token_attention(rand(1, 2, 16), codes, int32([[0, 1]]), int32([0]), int32([2]), 2, 1.0,
                                kv_scales=scales[:3])
        with pytest.raises(ValueError, match="only a float8_e4m3fn pool has scales"):
            tri.context_attention(rand(2, 2, 16), rand(4, 2, 16), int32([[0, 1]]), int32([0]), int32([0]),
                                  int32([2]), int32([0]), 2, 1.0, kv_scales=scales)
