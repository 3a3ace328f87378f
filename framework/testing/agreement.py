"""How closely a candidate engine follows a reference one greedily (an FP8 KV cache against the run dtype's, say):
teacher-forced, each step of the reference's greedy continuation is scored by both, so one early flip does not
hide every later step; free-running, how many tokens the two generate alike before they part."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Agreement:
    steps: int              # generated positions compared, teacher-forced
    same_argmax: int        # of them, where the candidate's greedy token is the reference's
    max_logprob_diff: float   # |log p| difference of the reference's token, worst step
    mean_logprob_diff: float
    max_flip_margin: float  # the reference's top-1 minus top-2 log-probability, widest where the two differ (0: none)
    same_prefix: list[int]  # free-running: per prompt, the tokens generated alike before the first difference

    @property
    def rate(self) -> float:
        return self.same_argmax / self.steps

    def row(self) -> list:
        return [self.steps, f"{100 * self.rate:.2f}%", f"{self.max_logprob_diff:.4f}", f"{self.mean_logprob_diff:.5f}",
                f"{self.max_flip_margin:.4f}", f"{sum(self.same_prefix) / len(self.same_prefix):.1f}"]

    HEADER = ["steps", "same greedy token", "max |dlogprob|", "mean |dlogprob|", "widest margin flipped",
              "mean tokens alike (free-running)"]


@dataclass
class ReferenceRun:
    """The reference's greedy continuations and, teacher-forced, its log-probabilities at each of their steps."""
    prompts: list[list[int]]
    continuations: list[list[int]]
    logprobs: list[torch.Tensor]  # per prompt [new_tokens, V] float32, on the host


def _scored(llm, prompt: list[int], continuation: list[int]) -> torch.Tensor:
    from zooinfer.tasks.score import prompt_logits
    ids = prompt + continuation
    return torch.log_softmax(prompt_logits(llm, ids)[len(prompt) - 1:-1].float().cpu(), dim=-1)


def _generate(llm, prompts, new_tokens) -> list[list[int]]:
    from zooinfer import SamplingParams
    params = SamplingParams(max_new_tokens=new_tokens, temperature=0, ignore_eos=True)
    out = [o.token_ids for o in llm.generate(prompt_token_ids=prompts, sampling_params=params)]
    llm.clear_cache()  # cached prefixes would hold the slots a scoring prefill needs
    return out


def reference_run(reference, prompts: list[list[int]], new_tokens: int) -> ReferenceRun:
    continuations = _generate(reference, prompts, new_tokens)
    return ReferenceRun(prompts, continuations, [_scored(reference, p, c) for p, c in zip(prompts, continuations)])


def agreement(ref: ReferenceRun, candidate) -> Agreement:
    """How closely `candidate` (an LLM over the reference's weights) follows a reference run: the reference need
    not be loaded any more (two large models need not fit at once)."""
    got = _generate(candidate, ref.prompts, len(ref.continuations[0]))
    same, diffs, prefix, flip_margin = 0, [], [], 0.0
    for prompt, want, ref_logprobs, cand_out in zip(ref.prompts, ref.continuations, ref.logprobs, got):
        tokens = torch.tensor(want)
        logprobs = _scored(candidate, prompt, want)
        flipped = logprobs.argmax(dim=-1) != tokens
        same += int((~flipped).sum())
        if flipped.any():
            top2 = ref_logprobs[flipped].topk(2, dim=-1).values
            flip_margin = max(flip_margin, float((top2[:, 0] - top2[:, 1]).max()))
        diffs.append((logprobs.gather(1, tokens[:, None]) - ref_logprobs.gather(1, tokens[:, None]))[:, 0].abs())
        alike = [a == b for a, b in zip(want, cand_out)] + [False]
        prefix.append(alike.index(False))
    diffs = torch.cat(diffs)
    return Agreement(len(diffs), same, float(diffs.max()), float(diffs.mean()), flip_margin, prefix)


def greedy_agreement(reference, candidate, prompts: list[list[int]], new_tokens: int) -> Agreement:
    """`reference` and `candidate` are LLMs over the same weights. The reference generates greedily; both then
    score prompt + continuation in one prefill each (zooinfer.tasks.score.prompt_logits)."""
    return agreement(reference_run(reference, prompts, new_tokens), candidate)
