"""Bad input: each mistake raises a one-line error naming the culprit, and the engine keeps working after it
(a good request on the same LLM object afterwards gives the same tokens, and no KV slot or table row leaks)."""
import json
import os
import shutil

import pytest
from safetensors.torch import load_file, save_file

from zooinfer import LLM, SamplingParams, cli
from zooinfer.errors import ZooinferError

pytestmark = pytest.mark.usefixtures("torch_single_thread")

CONTEXT = 64  # max_position_embeddings of the tiny checkpoint (conftest.TINY_LLAMA)
VOCAB = 128
GOOD_PROMPT = [3, 1, 4, 1, 5]
GOOD = SamplingParams(max_new_tokens=5, temperature=0, ignore_eos=True)


@pytest.fixture(scope="module")
def llm(tiny_llama_dir):
    return LLM(str(tiny_llama_dir))


@pytest.fixture(scope="module")
def reference(llm):
    """What a good request gives on a fresh engine, and the pool's free counts before any request."""
    kv = llm.model.kv_cache
    free = (kv.free_slot_count, kv.free_row_count)
    assert free == (kv.num_slots, kv.max_requests)
    assert (llm.max_model_len, llm.model.vocab_size) == (CONTEXT, VOCAB)
    return llm.generate(prompt_token_ids=GOOD_PROMPT, sampling_params=GOOD)[0].token_ids, free


def assert_pool_full(llm):
    """No request holds a KV slot or a table row (cached prefixes are dropped first: nobody uses them)."""
    llm.clear_cache()
    kv, engine = llm.model.kv_cache, llm.engine
    assert (kv.free_slot_count, kv.free_row_count) == (kv.num_slots, kv.max_requests), "KV slots or rows leaked"
    assert not engine.scheduler.has_work() and not engine.requests


@pytest.fixture
def assert_still_works(llm, reference):
    def check(engine=None):
        engine = engine or llm
        assert_pool_full(engine)
        out = engine.generate(prompt_token_ids=GOOD_PROMPT, sampling_params=GOOD)[0]
        if engine is llm:
            assert out.token_ids == reference[0]
        assert len(out.token_ids) == GOOD.max_new_tokens and out.finish_reason == "length"
        assert_pool_full(engine)
    return check


def one_line(exc_info, *culprits):
    """The error's message: one line, naming every culprit."""
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    for culprit in culprits:
        assert str(culprit) in msg, (culprit, msg)
    return msg


def copy_checkpoint(src, dst, edit_config=None, edit_tensors=None):
    dst.mkdir(exist_ok=True)
    config = json.loads((src / "config.json").read_text())
    if edit_config:
        edit_config(config)
    (dst / "config.json").write_text(json.dumps(config))
    if edit_tensors:
        tensors = load_file(src / "model.safetensors")
        edit_tensors(tensors)
        save_file(tensors, dst / "model.safetensors", metadata={"format": "pt"})
    else:
        shutil.copy(src / "model.safetensors", dst / "model.safetensors")
    return dst


# -- the model -----------------------------------------------------------------------------------------
def test_missing_model_path(assert_still_works):
    with pytest.raises(ZooinferError) as exc:
        LLM("/no/such/model-dir")
    one_line(exc, "/no/such/model-dir")
    assert_still_works()


def test_cli_missing_model_path(capsys, monkeypatch):
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "error")  # main() sets it; keep that from leaking out of the test
    assert cli.main(["generate", "hi", "--model", "/no/such"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("zooinfer: error:") and "/no/such" in err


@pytest.mark.parametrize("args, culprit", [(["--device", "cpux"], "cpux"), (["--dtype", "float8"], "float8"),
                                           (["--max-new-tokens", "0"], "max_new_tokens"),
                                           (["--backend", "nope"], "nope")])
def test_cli_bad_options_print_one_line(tiny_llama_dir, capsys, monkeypatch, args, culprit):
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "error")
    assert cli.main(["generate", "hi", "--model", str(tiny_llama_dir), *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("zooinfer: error:") and culprit in err


def test_unknown_model_type(tmp_path, assert_still_works):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mystery-arch"}))
    with pytest.raises(ZooinferError) as exc:
        LLM(str(tmp_path))
    one_line(exc, "mystery-arch", "llama")
    assert_still_works()


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", json.dumps({"hidden_size": 64})])
def test_unreadable_config(tmp_path, assert_still_works, text):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ZooinferError) as exc:
        LLM(str(tmp_path))
    one_line(exc, tmp_path / "config.json")
    assert_still_works()


def test_missing_tensor(tiny_llama_dir, tmp_path, assert_still_works):
    name = "model.layers.1.mlp.down_proj.weight"
    copy_checkpoint(tiny_llama_dir, tmp_path, edit_tensors=lambda t: t.pop(name))
    with pytest.raises(ZooinferError) as exc:
        LLM(str(tmp_path))
    assert "missing" in one_line(exc, name)
    assert_still_works()


def test_misshaped_tensor(tiny_llama_dir, tmp_path, assert_still_works):
    name = "model.layers.0.self_attn.k_proj.weight"  # [kv_heads * head_dim, hidden] = [32, 64]
    copy_checkpoint(tiny_llama_dir, tmp_path, edit_tensors=lambda t: t.update({name: t[name][:16].clone()}))
    with pytest.raises(ZooinferError) as exc:
        LLM(str(tmp_path))
    one_line(exc, name, "(16, 64)", "(32, 64)")
    assert_still_works()


def test_every_bad_tensor_is_named(tiny_llama_dir, tmp_path):
    def edit(t):
        t.pop("model.norm.weight")
        t["lm_head.weight"] = t["lm_head.weight"][:, :8].clone()
    copy_checkpoint(tiny_llama_dir, tmp_path, edit_tensors=edit)
    with pytest.raises(ZooinferError) as exc:
        LLM(str(tmp_path))
    one_line(exc, "model.norm.weight", "lm_head.weight")


@pytest.mark.parametrize("damage", ["half", "header", "empty", "garbage"])
def test_truncated_or_corrupt_safetensors(tiny_llama_dir, tmp_path, assert_still_works, damage):
    copy_checkpoint(tiny_llama_dir, tmp_path)
    path = tmp_path / "model.safetensors"
    size = path.stat().st_size
    if damage == "garbage":
        path.write_bytes(os.urandom(4096))
    else:
        with open(path, "r+b") as f:
            f.truncate({"half": size // 2, "header": 5, "empty": 0}[damage])
    with pytest.raises(ZooinferError) as exc:
        LLM(str(tmp_path))
    one_line(exc, path)
    assert_still_works()


def test_no_weights(tiny_llama_dir, tmp_path, assert_still_works):
    copy_checkpoint(tiny_llama_dir, tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ZooinferError) as exc:
        LLM(str(tmp_path))
    one_line(exc, tmp_path)
    assert_still_works()


@pytest.mark.parametrize("kwargs, culprit", [({"device": "cpux"}, "cpux"), ({"dtype": "float8"}, "float8")])
def test_invalid_device_and_dtype(tiny_llama_dir, assert_still_works, kwargs, culprit):
    with pytest.raises(ZooinferError) as exc:
        LLM(str(tiny_llama_dir), **kwargs)
    one_line(exc, culprit)
    assert_still_works()


# -- the request ---------------------------------------------------------------------------------------
def test_context_length_exceeded(llm, assert_still_works):
    with pytest.raises(ValueError) as exc:
        llm.generate(prompt_token_ids=list(range(10)), sampling_params=SamplingParams(max_new_tokens=CONTEXT - 9))
    one_line(exc, CONTEXT, "context length")
    assert_still_works()


def test_context_length_exactly_reached(llm, assert_still_works):
    out = llm.generate(prompt_token_ids=list(range(10)),
                       sampling_params=SamplingParams(max_new_tokens=CONTEXT - 10, temperature=0, ignore_eos=True))
    assert len(out[0].token_ids) == CONTEXT - 10
    assert_still_works()


def test_kv_cache_too_small_for_a_request(tiny_llama_dir, assert_still_works):
    small = LLM(str(tiny_llama_dir), kv_cache_tokens=16)
    with pytest.raises(ValueError) as exc:
        small.generate(prompt_token_ids=list(range(10)), sampling_params=SamplingParams(max_new_tokens=10))
    one_line(exc, "kv_cache_tokens", 16)
    assert_still_works(small)


@pytest.mark.parametrize("token", [VOCAB, 10**9, -1, -VOCAB])
def test_token_id_outside_vocabulary(llm, assert_still_works, token):
    with pytest.raises(ValueError) as exc:
        llm.generate(prompt_token_ids=[1, 2, token, 3], sampling_params=GOOD)
    one_line(exc, repr(token), "vocabulary")
    assert_still_works()


@pytest.mark.parametrize("kwargs, field", [
    ({"temperature": -1}, "temperature"), ({"temperature": float("nan")}, "temperature"),
    ({"top_p": 0}, "top_p"), ({"top_p": 1.5}, "top_p"), ({"top_p": float("nan")}, "top_p"),
    ({"top_k": -5}, "top_k"), ({"top_k": 2.5}, "top_k"),
    ({"max_new_tokens": 0}, "max_new_tokens"), ({"max_new_tokens": -3}, "max_new_tokens"),
    ({"max_new_tokens": True}, "max_new_tokens"),
    ({"repetition_penalty": 0}, "repetition_penalty"), ({"repetition_penalty": -1.0}, "repetition_penalty"),
    ({"logprobs": -1}, "logprobs"), ({"stop": [""]}, "stop"), ({"stop": [3]}, "stop"),
    ({"stop_token_ids": [-2]}, "stop_token_ids"), ({"seed": "42"}, "seed"),
])
def test_invalid_sampling_params(assert_still_works, kwargs, field):
    with pytest.raises(ValueError) as exc:
        SamplingParams(**kwargs)
    one_line(exc, f"SamplingParams.{field}", repr(next(iter(kwargs.values()))).replace("nan", ""))
    assert_still_works()


def test_valid_sampling_edge_values_are_accepted():
    for kwargs in ({"temperature": 0}, {"top_p": 1}, {"top_k": 0}, {"top_k": -1}, {"logprobs": 0},
                   {"repetition_penalty": 0.5}, {"stop": "x"}):
        SamplingParams(**kwargs)


@pytest.mark.parametrize("kwargs", [{"prompts": ["hi"], "prompt_token_ids": [[1, 2]]}, {}])
def test_prompts_and_token_ids_exactly_one(llm, assert_still_works, kwargs):
    with pytest.raises(ValueError) as exc:
        llm.generate(sampling_params=GOOD, **kwargs)
    one_line(exc, "prompts", "prompt_token_ids")
    assert_still_works()


def test_wrong_number_of_sampling_params(llm, assert_still_works):
    with pytest.raises(ValueError) as exc:
        llm.generate(prompt_token_ids=[[1], [2], [3]], sampling_params=[GOOD, GOOD])
    one_line(exc, "SamplingParams", 2, 3)
    assert_still_works()


def test_text_prompt_without_tokenizer(llm, tiny_llama_dir, assert_still_works):
    with pytest.raises(ValueError) as exc:
        llm.generate("hello there", GOOD)
    one_line(exc, "prompt_token_ids", tiny_llama_dir)
    assert_still_works()


@pytest.mark.parametrize("kwargs, culprit", [({"prompt_token_ids": [[]]}, "at least one token"),
                                             ({"prompts": [123]}, "int")])
def test_empty_or_non_text_prompt(llm, assert_still_works, kwargs, culprit):
    with pytest.raises(ValueError) as exc:
        llm.generate(sampling_params=GOOD, **kwargs)
    one_line(exc, culprit)
    assert_still_works()


@pytest.fixture
def count_steps(llm, monkeypatch):
    calls = []
    step = llm.engine.runner.step
    monkeypatch.setattr(llm.engine.runner, "step", lambda *a: calls.append(1) or step(*a))
    return calls


@pytest.mark.parametrize("ids, params, culprit", [
    ([[1, 2], [3, VOCAB + 7], [4]], GOOD, VOCAB + 7),
    ([[1, 2], [3], [4]], [GOOD, SamplingParams(max_new_tokens=CONTEXT), GOOD], CONTEXT),
])
def test_one_bad_request_in_a_batch_runs_nothing(llm, assert_still_works, count_steps, ids, params, culprit):
    with pytest.raises(ValueError) as exc:
        llm.generate(prompt_token_ids=ids, sampling_params=params)
    one_line(exc, culprit)
    assert count_steps == []
    assert_still_works()
    assert count_steps  # the good request afterwards did run


def test_error_inside_a_step_frees_everything(llm, monkeypatch, assert_still_works):
    step, calls = llm.engine.runner.step, []

    def failing_step(batch, is_prefill, next_tokens=None):
        calls.append(is_prefill)
        if len(calls) == 3:
            raise RuntimeError("injected failure")
        return step(batch, is_prefill, next_tokens)

    monkeypatch.setattr(llm.engine.runner, "step", failing_step)
    with pytest.raises(RuntimeError, match="injected failure"):
        llm.generate(prompt_token_ids=[[1, 2, 3], [4, 5]], sampling_params=GOOD)
    monkeypatch.undo()
    assert_still_works()


def test_logprobs_beyond_vocabulary(llm, count_steps):
    with pytest.raises(ValueError) as exc:
        llm.generate(prompt_token_ids=[1, 2], sampling_params=SamplingParams(max_new_tokens=2, logprobs=VOCAB + 1))
    one_line(exc, "logprobs", VOCAB)
    assert count_steps == []


@pytest.mark.parametrize("kwargs", [{"max_batch_size": 0}, {"kv_cache_tokens": -1}, {"max_model_len": -5}])
def test_invalid_engine_sizes(tiny_llama_dir, kwargs):
    with pytest.raises(ZooinferError) as exc:
        LLM(str(tiny_llama_dir), **kwargs).generate(prompt_token_ids=[1], sampling_params=GOOD)
    one_line(exc, next(iter(kwargs)))


def test_config_missing_a_required_key(tiny_llama_dir, tmp_path):
    copy_checkpoint(tiny_llama_dir, tmp_path, edit_config=lambda c: c.pop("hidden_size"))
    with pytest.raises(ZooinferError) as exc:
        LLM(str(tmp_path))
    one_line(exc, "hidden_size")


def test_mistyped_config_value(tiny_llama_dir, tmp_path):
    copy_checkpoint(tiny_llama_dir, tmp_path, edit_config=lambda c: c.update(rope_scaling={"rope_type": "nope"}))
    with pytest.raises(ZooinferError) as exc:
        LLM(str(tmp_path))
    one_line(exc, "llama config")


def test_stream_without_tokenizer(llm, assert_still_works):
    with pytest.raises(ZooinferError) as exc:
        next(llm.stream(prompt_token_ids=GOOD_PROMPT, sampling_params=GOOD))
    one_line(exc, "tokenizer")
    assert_still_works()


def test_numpy_token_ids_are_accepted(llm, reference):
    np = pytest.importorskip("numpy")
    out = llm.generate(prompt_token_ids=[np.array(GOOD_PROMPT)], sampling_params=GOOD)[0]
    assert out.token_ids == reference[0]


@pytest.mark.parametrize("params", [{"temperature": 0}, 3])
def test_sampling_params_of_the_wrong_type(llm, params, assert_still_works):
    with pytest.raises(ZooinferError) as exc:
        llm.generate(prompt_token_ids=GOOD_PROMPT, sampling_params=params)
    one_line(exc, "sampling_params")
    assert_still_works()


@pytest.mark.parametrize("fraction", [0, 1.5, -0.1])
def test_invalid_gpu_memory_fraction(tiny_llama_dir, fraction):
    with pytest.raises(ZooinferError) as exc:
        LLM(str(tiny_llama_dir), gpu_memory_fraction=fraction)
    one_line(exc, "gpu_memory_fraction", fraction)


# -- types where values enter ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def text_llm(tiny_llama_text_dir):
    return LLM(str(tiny_llama_text_dir))


@pytest.mark.parametrize("prompts, culprit", [
    (5, "int"), (b"hi", "bytes"), ((p for p in ["a"]), "generator"), ({"a"}, "set"), ({"a": 1}, "dict"),
    (["ok", 7], "int"), ("bad \ud800 text", "surrogate"), (["ok", "\udfff"], "surrogate"),
])
def test_prompts_of_the_wrong_type(text_llm, prompts, culprit):
    with pytest.raises(ZooinferError) as exc:
        text_llm.generate(prompts, GOOD)
    one_line(exc, culprit)
    assert not text_llm.engine.requests


@pytest.mark.parametrize("ids, culprit", [([1, 2.0, 3], "2.0"), ([1, True], "bool"), ("123", "str"),
                                          ("float tensor", "float"), ("bool tensor", "bool")])
def test_token_ids_of_the_wrong_type(llm, assert_still_works, ids, culprit):
    import torch
    if isinstance(ids, str) and ids.endswith("tensor"):
        ids = torch.tensor([1.0, 2.0]) if ids.startswith("float") else torch.tensor([True])
    with pytest.raises(ZooinferError) as exc:
        llm.generate(prompt_token_ids=[ids], sampling_params=GOOD)
    one_line(exc, culprit)
    assert_still_works()


def test_integer_tensors_and_arrays_are_accepted(llm, reference):
    import numpy as np
    import torch
    for ids in (torch.tensor(GOOD_PROMPT), torch.tensor(GOOD_PROMPT, dtype=torch.int32), np.array(GOOD_PROMPT),
                tuple(GOOD_PROMPT)):
        assert llm.generate(prompt_token_ids=ids, sampling_params=GOOD)[0].token_ids == reference[0]


@pytest.mark.parametrize("kwargs, field", [
    ({"seed": 2**64}, "seed"), ({"seed": -2**63 - 1}, "seed"), ({"seed": 2**64 - 2, "n": 3}, "seed"),
    ({"presence_penalty": 2.5}, "presence_penalty"), ({"frequency_penalty": -3}, "frequency_penalty"),
    ({"n": 0}, "n"), ({"stop_token_ids": "5"}, "stop_token_ids"), ({"stop": 3}, "stop"),
    ({"ignore_eos": "yes"}, "ignore_eos"),
])
def test_more_invalid_sampling_params(kwargs, field):
    with pytest.raises(ZooinferError) as exc:
        SamplingParams(**kwargs)
    one_line(exc, f"SamplingParams.{field}")


def test_one_stop_token_id_is_a_list_of_one():
    assert SamplingParams(stop_token_ids=5).stop_token_ids == [5]
    assert SamplingParams(seed=2**64 - 1).seed == 2**64 - 1


def test_stream_takes_one_prompt(text_llm):
    with pytest.raises(ZooinferError) as exc:
        text_llm.stream(["a", "b"])
    one_line(exc, "one prompt", "list of 2", "generate()")
    with pytest.raises(ZooinferError) as exc:
        text_llm.stream("a", SamplingParams(n=2))
    one_line(exc, "n=2")
    assert not text_llm.engine.requests


@pytest.mark.parametrize("kwargs, culprit", [({"tensor_parallel_size": 0}, "tensor_parallel_size"),
                                             ({"tensor_parallel_size": "2"}, "tensor_parallel_size"),
                                             ({"tensor_parallel_size": True}, "tensor_parallel_size"),
                                             ({"seed": 2**70}, "seed"),
                                             ({"enable_prefix_caching": "no"}, "enable_prefix_caching")])
def test_engine_arguments(tiny_llama_dir, kwargs, culprit):
    with pytest.raises(ZooinferError) as exc:
        LLM(str(tiny_llama_dir), **kwargs)
    one_line(exc, culprit)


def test_engine_request_ids(tiny_llama_dir):
    from zooinfer.engine import LLMEngine
    engine = LLMEngine(str(tiny_llama_dir))
    engine.add_request("a", prompt_token_ids=[1, 2], params=GOOD)
    for bad in ("a", 3):
        with pytest.raises(ZooinferError) as exc:
            engine.add_request(bad, prompt_token_ids=[1, 2], params=GOOD)
        one_line(exc, repr(bad))
    assert list(engine.requests) == ["a"]
