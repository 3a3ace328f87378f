"""LLM(tensor_parallel_size=2) on CPU ranks (gloo): the tp=1 tokens and logprobs (float32, within 1e-4) for llama with
fewer KV heads than ranks, GPT-2 (tied) and Qwen3-MoE, all with a vocabulary that 2 does not divide; seeded sampling,
prefix caching, preemption and scoring as at tp=1; a killed or hung rank named on the driver in bounded time; start-up
errors from any rank; shutdown, failures and a killed driver leave no process behind; --tp on the CLI."""
import faulthandler
import gc
import json
import os
import select
import signal
import subprocess
import sys
import time

import psutil
import pytest
import torch

from zooinfer import LLM, SamplingParams, cli
from zooinfer.engine import tensor_parallel
from zooinfer.errors import ZooinferError
from zooinfer.models.llama import LlamaTpPartModel
from zooinfer.plugin_manager import model_registry
from zooinfer.tasks.config import InferConfig
from zooinfer.tasks.score import ScoreTask
from zooinfer.testing import save_random_model

pytestmark = pytest.mark.usefixtures("torch_single_thread")
PROMPTS = [[3, 17, 92, 5, 44, 8, 130, 21, 9], [7, 7], list(range(20, 45))]
GREEDY = SamplingParams(max_new_tokens=6, temperature=0, logprobs=3, ignore_eos=True)
SEEDED = SamplingParams(max_new_tokens=6, temperature=0.9, top_k=40, seed=5, logprobs=3, ignore_eos=True)
ENGINE = dict(kv_cache_tokens=256, max_batch_size=4, threads=1)
HANG_S = 240  # a test that takes longer is stuck (each takes seconds): better a stack dump than a run that never ends


def spawned_children() -> list[psutil.Process]:
    """This process's children started by multiprocessing's spawn (rank workers), zombies included."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            spawned = "spawn_main" in " ".join(child.cmdline())
        except psutil.Error:  # a zombie (never reaped: left behind too) or one gone meanwhile
            spawned = child.is_running()
        if spawned:
            found.append(child)
    return found


@pytest.fixture(autouse=True)
def no_process_left():
    """Fails a test that leaves a rank process behind; ends the run with every thread's stack if one hangs."""
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
    deadline = time.monotonic() + 15
    while spawned_children() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not spawned_children(), "a rank process outlived its test"


def save_tiny(model_type, name, path, **change):
    cls = model_registry().get(model_type)
    save_random_model(cls.hf_config_class_object()(**{**cls.tiny_configs[name], "vocab_size": 131, **change}), path)
    return str(path)


def tokens_and_logprobs(outs):
    return [(o.outputs[0].token_ids, o.outputs[0].logprobs) for o in outs]


def assert_same(one, two):
    for (tokens1, logprobs1), (tokens2, logprobs2) in zip(one, two, strict=True):
        assert tokens2 == tokens1
        for step1, step2 in zip(logprobs1, logprobs2, strict=True):
            assert step2.keys() == step1.keys()
            assert all(abs(step2[t] - step1[t]) <= 1e-4 for t in step1), (step1, step2)


@pytest.mark.parametrize("model_type, name, change", [
    ("llama", "gqa", {"num_key_value_heads": 1}),  # the one KV head replicated on both ranks, untied lm_head
    ("gpt2", "base", {}),                           # tied lm_head, learned positions
    ("qwen3_moe", "raw_topk", {}),                  # expert shards
])
def test_tp2_matches_tp1(model_type, name, change, tmp_path):
    model_dir = save_tiny(model_type, name, tmp_path, **change)
    runs = []
    for tp in (1, 2):
        with LLM(model_dir, tensor_parallel_size=tp, **ENGINE) as llm:
            runs.append([tokens_and_logprobs(llm.generate(prompt_token_ids=PROMPTS, sampling_params=params))
                         for params in (GREEDY, SEEDED)]
                        + [[out.logprobs for out in ScoreTask(InferConfig(), llm)(PROMPTS)]])  # every position
    (greedy1, seeded1, scores1), (greedy2, seeded2, scores2) = runs
    assert_same(greedy1, greedy2)
    assert_same(seeded1, seeded2)
    torch.testing.assert_close(torch.tensor(sum(scores2, [])), torch.tensor(sum(scores1, [])), atol=1e-4, rtol=0)


def test_tp2_prefix_caching_and_preemption_match_tp1(tmp_path):
    """A pool too small for the whole batch preempts; a second round reuses the first round's prefixes."""
    model_dir = save_tiny("llama", "gqa", tmp_path, num_key_value_heads=1)
    prompts = [list(range(10, 40)), list(range(10, 36)) + [99], list(range(50, 80))]
    params = SamplingParams(max_new_tokens=24, temperature=0, logprobs=2, ignore_eos=True)
    results = []
    for tp in (1, 2):
        with LLM(model_dir, tensor_parallel_size=tp, kv_cache_tokens=100, max_batch_size=3, threads=1) as llm:
            rounds = [llm.generate(prompt_token_ids=prompts, sampling_params=params) for _ in range(2)]
            stats = llm.get_stats()
        results.append(tokens_and_logprobs(rounds[0] + rounds[1]))
        assert stats["preemptions"] > 0 and stats["prefix_cache"]["hit_tokens"] > 0, stats
    assert_same(*results)


def test_tp2_fp8_kv_cache_matches_tp1(tmp_path):
    """Every rank quantizes its own heads' keys and values with per-head scales: the tp=1 FP8 pool's values."""
    model_dir = save_tiny("llama", "gqa", tmp_path)
    runs = []
    for tp in (1, 2):
        with LLM(model_dir, tensor_parallel_size=tp, kv_cache_dtype="fp8", **ENGINE) as llm:
            assert llm.get_stats()["kv_cache"]["dtype"] == "float8_e4m3fn"
            runs.append(tokens_and_logprobs(llm.generate(prompt_token_ids=PROMPTS, sampling_params=GREEDY)))
    assert_same(*runs)


def test_killed_rank_is_named_and_the_engine_refuses_further_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(tensor_parallel, "COLLECTIVE_TIMEOUT_S", 20.0)  # a backstop: a dead peer fails at once
    model_dir = save_tiny("llama", "gqa", tmp_path)
    llm = LLM(model_dir, tensor_parallel_size=2, **ENGINE)
    (pid,) = llm.model.worker_pids
    engine = llm.engine
    engine.add_request("r", prompt_token_ids=PROMPTS[0], params=SamplingParams(max_new_tokens=50, ignore_eos=True))
    assert [o.new_token_ids for o in engine.step() + engine.step()]  # running, with tokens
    os.kill(pid, signal.SIGKILL)
    start, outputs = time.monotonic(), []
    while engine.has_unfinished() and time.monotonic() - start < 30:
        outputs += engine.step()
    assert time.monotonic() - start < 30
    error = outputs[-1].error
    assert isinstance(error, ZooinferError) and outputs[-1].finish_reason == "error"
    message = str(error)
    assert "\n" not in message and "rank 1" in message and f"pid {pid}" in message and "SIGKILL" in message
    assert not psutil.pid_exists(pid) and llm.model.worker_pids == []
    assert engine.kv.available == engine.model.kv_cache.num_slots  # the failed request gave back its slots
    with pytest.raises(ZooinferError, match="rank 1 .*no more steps"):
        llm.generate(prompt_token_ids=[[1, 2, 3]], sampling_params=GREEDY)
    llm.shutdown()


def test_a_hung_rank_times_out_instead_of_hanging(tmp_path, monkeypatch):
    monkeypatch.setattr(tensor_parallel, "COLLECTIVE_TIMEOUT_S", 4.0)
    monkeypatch.setattr(tensor_parallel, "DEATH_WAIT_S", 1.0)
    model_dir = save_tiny("llama", "gqa", tmp_path)
    with LLM(model_dir, tensor_parallel_size=2, **ENGINE) as llm:
        (pid,) = llm.model.worker_pids
        os.kill(pid, signal.SIGSTOP)
        start = time.monotonic()
        with pytest.raises(ZooinferError) as exc:
            llm.generate(prompt_token_ids=PROMPTS, sampling_params=GREEDY)
        assert time.monotonic() - start < 30
        assert "\n" not in str(exc.value) and "tensor-parallel step failed" in str(exc.value)
        assert not psutil.pid_exists(pid)  # the stopped rank was killed, not left behind


def test_shutdown_and_collection_stop_the_ranks(tmp_path):
    model_dir = save_tiny("llama", "gqa", tmp_path)
    llm = LLM(model_dir, tensor_parallel_size=2, **ENGINE)
    (pid,) = llm.model.worker_pids
    llm.shutdown()
    assert not psutil.pid_exists(pid)
    with pytest.raises(ZooinferError, match="shut down"):
        llm.generate(prompt_token_ids=PROMPTS, sampling_params=GREEDY)
    broken = LLM(model_dir, tensor_parallel_size=2, **ENGINE)
    os.kill(broken.model.worker_pids[0], signal.SIGKILL)
    with pytest.raises(ZooinferError, match="rank 1"):
        broken.generate(prompt_token_ids=PROMPTS, sampling_params=GREEDY)
    llm = LLM(model_dir, tensor_parallel_size=2, **ENGINE)  # each left its process group: a new one can start
    (pid,) = llm.model.worker_pids
    broken.shutdown()  # what its collection runs too: it must leave the new one's process group alone
    assert llm.generate(prompt_token_ids=PROMPTS, sampling_params=GREEDY)[0].outputs[0].token_ids
    del llm
    gc.collect()
    assert not psutil.pid_exists(pid)


def test_an_impossible_split_gives_the_one_rank_message(tmp_path):
    model_dir = save_tiny("llama", "gqa", tmp_path, num_attention_heads=3, num_key_value_heads=1, hidden_size=48,
                          intermediate_size=64)
    with pytest.raises(ZooinferError) as exc:
        LLM(model_dir, tensor_parallel_size=2, **ENGINE)
    assert str(exc.value) == "num_attention_heads=3 is not divisible by tp=2"


class FailsOnRankOne(LlamaTpPartModel):
    """A family whose rank 1 cannot load (found by the spawned worker through this module)."""

    def _init_weights(self):
        if self.tp_rank == 1:
            raise ZooinferError("rank one cannot read its shard")
        super()._init_weights()


def test_a_worker_start_up_error_comes_back_as_one_line(tmp_path, register_plugin):
    model_dir = save_tiny("llama", "gqa", tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "fails-on-rank-one"}))
    register_plugin("fails-on-rank-one", models=lambda registry: registry.register("fails-on-rank-one", FailsOnRankOne))
    with pytest.raises(ZooinferError) as exc:
        LLM(model_dir, tensor_parallel_size=2, **ENGINE)
    assert str(exc.value) == "rank one cannot read its shard"


def test_cli_tp_flag(tiny_llama_text_dir, capsys, monkeypatch):
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "error")
    outputs = []
    for tp in ("1", "2"):
        assert cli.main(["generate", "hello", "--model", str(tiny_llama_text_dir), "--tp", tp, "--threads", "1",
                         "--max-new-tokens", "8", "--raw"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and outputs[0].strip()
    assert cli.main(["generate", "hello", "--model", str(tiny_llama_text_dir), "--tp", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "tensor_parallel_size" in err


@pytest.mark.parametrize("size", [0, -1, 1.5, "2", True, None])
def test_bad_sizes_are_refused(size, tiny_llama_dir):
    with pytest.raises(ZooinferError) as exc:
        LLM(str(tiny_llama_dir), tensor_parallel_size=size)
    assert "\n" not in str(exc.value) and "tensor_parallel_size" in str(exc.value)
    with pytest.raises(ZooinferError, match="tensor_parallel_size"):
        InferConfig(tensor_parallel_size=size)


DRIVER = """
import sys, time
from zooinfer import LLM
llm = LLM(sys.argv[1], tensor_parallel_size=2, kv_cache_tokens=256, threads=1)
print(*llm.model.worker_pids, flush=True)
time.sleep(120)
"""


def test_a_worker_outlives_no_killed_driver(tmp_path):
    model_dir = save_tiny("llama", "gqa", tmp_path)
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, model_dir], stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([driver.stdout], [], [], 120)
        assert ready, "the driver did not start its rank in time"
        worker = psutil.Process(int(driver.stdout.readline()))
        driver.kill()
        driver.wait(timeout=30)
        try:  # reparented when its driver died; it must notice and exit by itself
            worker.wait(timeout=30)
        except psutil.TimeoutExpired:
            if worker.status() != psutil.STATUS_ZOMBIE:  # an exited worker that nobody reaped yet is gone too
                worker.kill()
                raise
    finally:
        driver.kill()
        driver.wait(timeout=30)


def test_compare_at_tp2_matches_transformers(tmp_path, capsys):
    """`zooinfer compare --tp 2`: the split model against transformers itself (float32 logits within 1e-4)."""
    model_dir = save_tiny("llama", "gqa", tmp_path, num_key_value_heads=1)
    assert cli.main(["compare", model_dir, "--tp", "2", "--steps", "4", "--prompt-len", "8", "--warmup", "0",
                     "--atol", "1e-4"]) == 0
    assert "OK" in capsys.readouterr().out
