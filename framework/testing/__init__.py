"""zooinfer.testing: the kit a model family or a backend tests itself with.

- Hugging Face parity helpers (below; importing them costs nothing until one is called): a tiny random transformers model, its teacher-forced logprobs, and the
  greedy-parity assertion every model test uses, and batch == single.
- `pytest --pyargs zooinfer.testing --zooinfer-backend NAME [--zooinfer-device DEV]`: the op conformance suite
  (test_ops.py) and the whole-model parity suite (test_models.py) on one installed backend; plugin.py is the
  pytest plugin (entry point pytest11) that adds those options.
- interpreter.py: the Triton interpreter switch for CPU runs; divergence.py: which op a failing model trips on;
  agreement.py: how closely one engine follows another greedily (an FP8 KV cache against the plain one).
"""
from __future__ import annotations

__all__ = ["save_random_model", "teacher_forced_logprobs", "assert_greedy_matches", "assert_batch_equals_single"]


def save_random_model(config, out_dir, seed: int = 0):
    """A randomly initialised transformers model of `config`, saved as safetensors; returns the HF model."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    with torch.no_grad():  # larger-than-default weights make logits less flat, so near-ties are rare
        for p in model.parameters():
            p.normal_(0, 0.5 if p.dim() == 1 else 0.08)
    model.save_pretrained(out_dir, safe_serialization=True)
    return model


def teacher_forced_logprobs(hf_model, prompt: list[int], generated: list[int]):
    """log p(generated[i] | prompt + generated[:i]) from one transformers forward pass, shape [len(generated)],
    and the logits they come from."""
    import torch

    ids = torch.tensor([prompt + generated])
    with torch.no_grad():
        logits = hf_model(ids).logits[0, len(prompt) - 1:-1].float()
    return torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(generated)[:, None])[:, 0], logits


def assert_greedy_matches(hf_model, prompt, output, atol=1e-4):
    """Our greedy tokens equal HF's argmax at every step (a flip allowed only at a genuine near-tie),
    and our logprobs of them are within atol of HF's teacher-forced ones."""
    import torch

    generated = output.token_ids
    ref_lp, ref_logits = teacher_forced_logprobs(hf_model, prompt, generated)
    ours = torch.tensor([lp[t] for lp, t in zip(output.logprobs, generated)])
    for i, tok in enumerate(generated):
        best = int(ref_logits[i].argmax())
        if best != tok:
            top2 = ref_logits[i].topk(2).values
            assert float(top2[0] - top2[1]) < 1e-3, f"step {i}: token {tok} but HF argmax {best}"
            ours, ref_lp = ours[:i], ref_lp[:i]  # after a near-tie flip the sequences legitimately diverge
            break
    torch.testing.assert_close(ours, ref_lp, atol=atol, rtol=0)


def assert_batch_equals_single(llm, prompts: list[list[int]], params) -> None:
    """Each prompt generated in one continuous batch (lengths that differ, more requests than the batch holds,
    prefills split across steps) gives the tokens, and the logprobs within 1e-5, that it gives alone; afterwards,
    once cached prefixes are dropped, every KV slot is free again."""
    batched = llm.generate(prompt_token_ids=prompts, sampling_params=params)
    for prompt, out in zip(prompts, batched):
        alone = llm.generate(prompt_token_ids=[prompt], sampling_params=params)[0]
        assert out.token_ids == alone.token_ids, f"prompt {prompt}: batched {out.token_ids}, alone {alone.token_ids}"
        for ours, ref in zip(out.logprobs or [], alone.logprobs or []):
            assert ours.keys() == ref.keys() and max(abs(ours[t] - ref[t]) for t in ours) < 1e-5
    llm.clear_cache()
    kv = llm.model.kv_cache
    assert kv.free_slot_count == kv.num_slots, f"{kv.num_slots - kv.free_slot_count} KV slots still held"
