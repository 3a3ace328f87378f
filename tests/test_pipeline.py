"""pipeline(), InferTask, InferConfig presets and the built-in tasks; the score task against transformers."""
import types
from pathlib import Path

import pytest
import torch

import zooinfer
from zooinfer import InferConfig, InferTask, LLM, SamplingParams, hookimpl, pipeline
from zooinfer.cli import build_parser, run_config
from zooinfer.errors import ZooinferError
from zooinfer.plugin_manager import get_plugin_manager
from zooinfer.tasks import Task

pytestmark = pytest.mark.usefixtures("torch_single_thread")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def llm(tiny_llama_dir):
    return LLM(str(tiny_llama_dir), kv_cache_tokens=256, max_batch_size=4)


@pytest.fixture(scope="module")
def hf_model(tiny_llama_dir):
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()


def task(name, llm, **fields):
    return InferTask.get_infer_task(name, InferConfig(model=str(llm.model_dir), **fields), llm=llm)


def test_builtin_tasks_are_registered():
    assert {"text_generation", "chat", "score"} <= set(InferTask.support_list())
    assert InferTask.check_task_valid("score") and not InferTask.check_task_valid("translate")
    assert not InferTask.check_task_valid(None)


def test_a_plugin_adds_a_task(llm):
    class Shout(Task):
        def __call__(self, inputs, **_):
            return inputs.upper()

    plugin = types.SimpleNamespace(zooinfer_register_tasks=hookimpl(lambda registry: registry.register("shout", Shout)))
    pm = get_plugin_manager()
    pm.register(plugin, name="shout-plugin")
    try:
        assert "shout" in InferTask.support_list()
        assert task("shout", llm)("hi") == "HI"
    finally:
        pm.unregister(name="shout-plugin")
    assert not InferTask.check_task_valid("shout")


def test_score_matches_transformers(llm, hf_model):
    texts = [[3, 17, 99, 4, 56, 120, 7, 7, 31], [5, 6]]
    outs = task("score", llm)(texts)
    for ids, out in zip(texts, outs):
        with torch.no_grad():
            logits = hf_model(torch.tensor([ids])).logits[0, :-1].float()
        ref = torch.log_softmax(logits, -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
        assert out.token_ids == ids and len(out.logprobs) == len(ids) - 1
        torch.testing.assert_close(torch.tensor(out.logprobs), ref, atol=1e-4, rtol=0)
        assert out.perplexity == pytest.approx(float(torch.exp(-ref.mean())), rel=1e-4)
    llm.clear_cache()  # cached prefixes hold slots until dropped
    assert llm.model.kv_cache.free_slot_count == llm.model.kv_cache.num_slots  # slots given back


def test_text_generation_is_the_engines_greedy_output(llm):
    ids = [[4, 8, 15, 16, 23, 42], [9, 9]]
    expected = llm.generate(prompt_token_ids=ids, sampling_params=SamplingParams(max_new_tokens=5, temperature=0))
    gen = task("text_generation", llm, max_new_tokens=5)
    assert [o.token_ids for o in gen(ids)] == [o.token_ids for o in expected]
    assert gen(ids[0]).token_ids == expected[0].token_ids
    assert len(gen(ids[0], max_new_tokens=2).token_ids) == 2  # a keyword overrides the config's default
    for bad in ("hello", ["a", [1, 2]], 42):
        with pytest.raises(ZooinferError, match="no tokenizer|one kind"):
            gen(bad)


def test_chat_needs_a_chat_template(llm):
    with pytest.raises(ZooinferError, match="no chat template") as exc:
        task("chat", llm)([{"role": "user", "content": "hi"}])
    assert "\n" not in str(exc.value)


def test_infer_config_from_yaml_with_overrides(tmp_path):
    config = InferConfig.from_yaml(CONFIGS / "run-cpu.yaml", max_new_tokens=7, model=None)
    assert (config.device, config.dtype, config.max_new_tokens, config.max_batch_size) == ("cpu", "float32", 7, 16)
    assert config.sampling_params(seed=3).seed == 3 and config.sampling_params().temperature == 0.0
    assert InferConfig.from_yaml(CONFIGS / "run-gpu.yaml").engine_kwargs()["backend"] == "triton"


def test_generate_flags_override_the_preset():
    args = build_parser().parse_args(["generate", "hi", "--config", str(CONFIGS / "run-cpu.yaml"), "--dtype",
                                      "bfloat16", "--threads", "1", "--no-cuda-graph"])
    config = run_config(args)
    assert (config.dtype, config.threads, config.enforce_eager, config.max_new_tokens) == ("bfloat16", 1, True, 128)
    plain = run_config(build_parser().parse_args(["generate", "hi"]))
    assert plain == InferConfig()


BAD_PRESETS = {
    "unknown key": ("devices: cpu\n", "'devices'"),
    "bad value": ("max_batch_size: 0\n", "max_batch_size"),
    "not a mapping": ("- cpu\n", "mapping"),
    "bad threads": ("threads: two\n", "threads"),
}


@pytest.mark.parametrize("name", BAD_PRESETS)
def test_bad_presets_name_the_culprit(name, tmp_path, capsys):
    text, culprit = BAD_PRESETS[name]
    (tmp_path / "run.yaml").write_text(text)
    with pytest.raises(ZooinferError, match=culprit) as exc:
        InferConfig.from_yaml(tmp_path / "run.yaml")
    assert "\n" not in str(exc.value)
    code = zooinfer.cli.main(["generate", "hi", "--config", str(tmp_path / "run.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("zooinfer: error: ") and err.count("\n") == 1 and culprit in err


def test_pipeline_bad_input():
    with pytest.raises(ZooinferError, match="unknown task 'translate'.*score"):
        pipeline("translate", model="/nowhere")
    with pytest.raises(ZooinferError, match="'temprature', which is not an InferConfig field"):
        pipeline("text_generation", temprature=0.5)
    with pytest.raises(ZooinferError, match="InferConfig.device"):
        pipeline("text_generation", device=3)
    with pytest.raises(ZooinferError, match="needs an InferConfig"):
        InferTask.get_infer_task("score", {"model": "x"})


@pytest.mark.parametrize("inputs, culprit", [
    ([5], "at least two tokens"),
    ([5, 300], "token id 300 is outside the vocabulary"),
    (list(range(2, 100)) * 3, "exceeds the 64 tokens"),
    ([[1, 2], [2.5, 3]], "2.5"),
    ("some text", "no tokenizer"),
])
def test_score_bad_input_then_still_works(llm, inputs, culprit):
    scorer = task("score", llm)
    with pytest.raises(ZooinferError, match=culprit) as exc:
        scorer(inputs)
    assert "\n" not in str(exc.value)
    llm.clear_cache()  # cached prefixes hold slots until dropped
    assert llm.model.kv_cache.free_slot_count == llm.model.kv_cache.num_slots
    assert len(scorer([1, 2, 3]).logprobs) == 2


def test_pipeline_builds_its_engine(tiny_llama_dir):
    scorer = pipeline("score", model=str(tiny_llama_dir), kv_cache_tokens=64, max_batch_size=1, threads=1)
    assert scorer.llm.model.kv_cache.num_slots == 64 and torch.get_num_threads() == 1
    assert len(scorer([1, 2, 3, 4]).logprobs) == 3


def test_chat_on_the_default_model():
    chat = pipeline("chat", max_new_tokens=6, max_batch_size=2, threads=1)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]
    prompt = chat.llm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    expected = chat.llm.generate(prompt, SamplingParams(max_new_tokens=6, temperature=0))[0]
    got = chat(messages)
    assert got.token_ids == expected.token_ids and got.prompt == prompt
    assert [o.token_ids for o in chat([messages, "Name a colour."])][0] == expected.token_ids  # a list of chats
    with pytest.raises(ZooinferError, match="chat message 0 must be a dict") as exc:
        chat([[{"role": "user"}]])
    assert "\n" not in str(exc.value)
    assert chat("Hi").finish_reason in ("stop", "length")  # still works
