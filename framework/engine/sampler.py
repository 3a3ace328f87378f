"""Next-token choice for a batch: repetition penalty, temperature, top-k, top-p, seeded draws, logprobs.

`sample` stays on the device (no host sync), so the engine can launch the next step before `to_host`
brings the tokens back."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .request import Request


@dataclass
class Sampled:
    tokens: torch.Tensor  # [B] chosen token ids, on the device
    logprobs: tuple | None  # (top values, top ids, chosen token's) on the device, when a request asked for them


class Sampler:
    def __init__(self, device: torch.device, seed: int | None):
        self.device = device
        self.generator = torch.Generator(device=device)  # for requests without a seed: OS entropy unless seeded
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)

    def sample(self, logits: torch.Tensor, reqs: list[Request]) -> Sampled:
        """logits [B, V] float32 -> the chosen tokens (and logprobs), still on the device."""
        penalized = self._penalize(logits, reqs)
        if all(r.params.greedy for r in reqs):
            tokens = penalized.argmax(dim=-1)
        else:
            tokens = self._sample(penalized, reqs)
        return Sampled(tokens, self._logprobs(logits, tokens, reqs))

    def _penalize(self, logits, reqs):
        """transformers' repetition penalty (a seen token's logit divided by it when positive, else multiplied),
        then OpenAI's presence and frequency penalties over the generated tokens."""
        rows = [i for i, r in enumerate(reqs) if r.params.needs_output_ids_on_device]
        if not rows:
            return logits
        logits = logits.clone()
        for i in rows:
            p, req = reqs[i].params, reqs[i]
            if p.repetition_penalty != 1.0:
                seen = torch.tensor(sorted(set(req.all_ids)), device=logits.device)
                picked = logits[i, seen]
                logits[i, seen] = torch.where(picked > 0, picked / p.repetition_penalty, picked * p.repetition_penalty)
            if (p.presence_penalty or p.frequency_penalty) and req.output_ids:
                counts = torch.bincount(torch.tensor(req.output_ids, device=logits.device),
                                        minlength=logits.shape[-1])[:logits.shape[-1]].to(logits.dtype)
                logits[i] -= p.presence_penalty * (counts > 0).to(logits.dtype) + p.frequency_penalty * counts
        return logits

    def _sample(self, logits, reqs):
        params = [r.params for r in reqs]
        temps = torch.tensor([p.temperature or 1.0 for p in params], device=logits.device)
        scaled = logits / temps[:, None]
        top_k = [p.top_k if p.top_k > 0 else scaled.shape[-1] for p in params]
        top_p = torch.tensor([p.top_p for p in params], device=logits.device)
        if min(top_k) < scaled.shape[-1] or any(p.top_p < 1 for p in params):
            scaled = self._filter(scaled, top_k, top_p)
        probs = torch.softmax(scaled, dim=-1)
        # Exponential race: argmax(p / E) with E ~ Exp(1) draws from p, one noise row per request so a seeded
        # request gets the same draws whatever else is in the batch.
        noise = torch.empty_like(probs)
        for i, r in enumerate(reqs):
            noise[i].exponential_(generator=r.generator or self.generator)
        sampled = (probs / noise).argmax(dim=-1)
        greedy = torch.tensor([p.greedy for p in params], device=logits.device)
        return torch.where(greedy, logits.argmax(dim=-1), sampled)

    @staticmethod
    def _filter(scaled, top_k, top_p):
        sorted_logits, order = scaled.sort(dim=-1, descending=True)
        ranks = torch.arange(scaled.shape[-1], device=scaled.device)
        drop = ranks[None, :] >= torch.tensor(top_k, device=scaled.device)[:, None]
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop |= (cumulative - sorted_logits.softmax(dim=-1)) >= top_p[:, None]  # keep the token that crosses top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        return torch.empty_like(scaled).scatter_(-1, order, sorted_logits)

    @staticmethod
    def _logprobs(raw, tokens, reqs):
        """The unmodified distribution's top-N and chosen-token log-probabilities, still on the device."""
        wanted = [r.params.logprobs for r in reqs]
        if all(n is None for n in wanted):
            return None
        logprobs = torch.log_softmax(raw, dim=-1)
        n = max(w or 0 for w in wanted)
        top_vals, top_ids = logprobs.topk(n, dim=-1) if n else (logprobs[:, :0], tokens[:, None][:, :0])
        return top_vals, top_ids, logprobs.gather(1, tokens[:, None]).squeeze(1)

    @staticmethod
    def to_host(sampled: Sampled, reqs: list[Request]):
        """(token ids, per-request {token: logprob} dicts or None): the step's transfer to the host."""
        tokens = sampled.tokens.tolist()
        if sampled.logprobs is None:
            return tokens, [None] * len(reqs)
        top_vals, top_ids, chosen = (t.tolist() for t in sampled.logprobs)
        out = []
        for i, (req, tok) in enumerate(zip(reqs, tokens)):
            n = req.params.logprobs
            out.append(None if n is None else {**dict(zip(top_ids[i][:n], top_vals[i][:n])), tok: chosen[i]})
        return tokens, out
