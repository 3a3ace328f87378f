"""The whole-model parity suite: every registered family, each of its tiny configs (the family's `tiny_configs`,
transformers kwargs for its `hf_config_class`), random weights, float32, generated greedily through the backend
under test. Its teacher-forced logprobs must match transformers within 1e-4 and its tokens and logprobs the torch
backend's. On a failure the run is repeated with every op checked against the torch reference, to name the
first op that diverges."""
import pytest
import torch

from zooinfer.testing import assert_greedy_matches, save_random_model

pytestmark = pytest.mark.usefixtures("kit_interpreter")

PROMPT_LENGTHS = (9, 2, 40)
STEPS = 6
ATOL = 1e-4


def model_cases():
    """(family, config name) params of every registered family; a family without tiny configs is skipped,
    one that fails to load errors in its test."""
    from zooinfer.errors import ZooinferError
    from zooinfer.plugin_manager import model_registry

    params = []
    for entry in model_registry().entries():
        try:
            names = list(getattr(entry.resolve(), "tiny_configs", None) or {})
        except ZooinferError:
            names = ["<fails to load>"]
        if not names:
            params.append(pytest.param(entry.name, None, id=entry.name, marks=pytest.mark.skip(
                reason=f"model family {entry.name!r} declares no tiny_configs")))
        params += [pytest.param(entry.name, name, id=f"{entry.name}-{name}") for name in names]
    return params


def pytest_generate_tests(metafunc):
    if "family" in metafunc.fixturenames:
        metafunc.parametrize("family, config_name", model_cases())


def make_checkpoint(family, config_name, out_dir):
    """The family's tiny config as a random transformers model saved in out_dir; returns (HF model, prompts)."""
    import transformers

    from zooinfer.plugin_manager import model_registry

    cls = model_registry().get(family)
    hf_config_class = getattr(cls, "hf_config_class", None)
    if hf_config_class is None:
        pytest.fail(f"model family {family!r} has tiny_configs but no hf_config_class")
    hf = save_random_model(getattr(transformers, hf_config_class)(**cls.tiny_configs[config_name]), out_dir)
    generator = torch.Generator().manual_seed(0)
    vocab = hf.config.vocab_size
    return hf, [torch.randint(0, vocab, (n,), generator=generator).tolist() for n in PROMPT_LENGTHS]


def generate(model_dir, backend, device, prompts):
    from zooinfer import LLM, SamplingParams
    from zooinfer.plugin_manager import backend_registry

    llm = LLM(str(model_dir), device=str(device), backend=backend, dtype="float32", enforce_eager=True,
              kv_cache_tokens=512, max_prefill_tokens=40,  # a small prefill budget: later prompts join a decode batch
              strict=True)  # every checkpoint tensor used
    assert type(llm.model.ops) is backend_registry().get(backend)
    params = SamplingParams(max_new_tokens=STEPS, temperature=0, logprobs=0, ignore_eos=True)
    return llm.generate(prompt_token_ids=prompts, sampling_params=params)


def agrees_with_torch(prompt_index, ours, reference):
    """None when the backend's greedy tokens and logprobs match the torch backend's, else why not."""
    for step, (token, ref_token) in enumerate(zip(ours.token_ids, reference.token_ids)):
        lp, ref_lp = ours.logprobs[step][token], reference.logprobs[step][ref_token]
        if abs(lp - ref_lp) > ATOL or (token != ref_token and abs(lp - ref_lp) > 1e-6):
            return (f"prompt {prompt_index}, step {step}: token {token} logprob {lp:.6f}, the torch backend's "
                    f"token {ref_token} logprob {ref_lp:.6f}")
        if token != ref_token:
            return None  # a genuine tie: the sequences legitimately part here
    return None


def test_model_matches_transformers_and_torch(family, config_name, zooinfer_backend, zooinfer_device, tmp_path):
    from zooinfer.testing.divergence import locate_divergence
    from zooinfer.testing.plugin import backend_class

    hf, prompts = make_checkpoint(family, config_name, tmp_path)
    outputs = generate(tmp_path, zooinfer_backend, zooinfer_device, prompts)
    problems = []
    for i, (prompt, out) in enumerate(zip(prompts, outputs)):
        try:
            assert_greedy_matches(hf, prompt, out, atol=ATOL)  # the reference runs on the CPU in float32
        except AssertionError as exc:
            problems.append(f"against transformers, prompt {i}: {' '.join(str(exc).split())}")
    if zooinfer_backend != "torch":
        references = generate(tmp_path, "torch", zooinfer_device, prompts)
        problems += [f"against the torch backend, {p}" for p in
                     (agrees_with_torch(i, o, r) for i, (o, r) in enumerate(zip(outputs, references))) if p]
    if problems:
        culprit = locate_divergence(tmp_path, backend_class(zooinfer_backend, zooinfer_device), zooinfer_device,
                                    prompts, STEPS)
        pytest.fail(f"{family} {config_name} on {zooinfer_backend} ({zooinfer_device}): {problems[0]}\n{culprit}",
                    pytrace=False)
