"""Helpers shared by the parity tests: tiny random Hugging Face models and their teacher-forced logprobs."""
from __future__ import annotations

import torch


def save_random_model(config, out_dir, seed: int = 0):
    """A randomly initialised transformers model of `config`, saved as safetensors; returns the HF model."""
    from transformers import AutoModelForCausalLM
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    with torch.no_grad():  # larger-than-default weights make logits less flat, so near-ties are rare
        for p in model.parameters():
            p.normal_(0, 0.5 if p.dim() == 1 else 0.08)
    model.save_pretrained(out_dir, safe_serialization=True)
    return model


@torch.no_grad()
def teacher_forced_logprobs(hf_model, prompt: list[int], generated: list[int]) -> torch.Tensor:
    """log p(generated[i] | prompt + generated[:i]) from one transformers forward pass; shape [len(generated)]."""
    ids = torch.tensor([prompt + generated])
    logits = hf_model(ids).logits[0, len(prompt) - 1:-1].float()
    return torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(generated)[:, None])[:, 0], logits


def assert_greedy_matches(hf_model, prompt, output, atol=1e-4):
    """Our greedy tokens equal HF's argmax at every step (a flip allowed only at a genuine near-tie),
    and our logprobs of them are within atol of HF's teacher-forced ones."""
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
