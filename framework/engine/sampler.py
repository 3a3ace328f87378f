"""Next-token choice for a batch: repetition penalty, temperature, top-k, top-p, seeded draws, logprobs.

Everything stays on the device until the one host transfer per step at the end."""
from __future__ import annotations

import torch

from .request import Request


class Sampler:
    def __init__(self, device: torch.device, seed: int):
        self.device = device
        self.generator = torch.Generator(device=device).manual_seed(seed)  # for requests without a seed

    def __call__(self, logits: torch.Tensor, reqs: list[Request]):
        """logits [B, V] float32 -> (token ids, per-request logprob dicts or None)."""
        raw = logits
        logits = self._penalize(logits, reqs)
        if all(r.params.greedy for r in reqs):
            tokens = logits.argmax(dim=-1)
        else:
            tokens = self._sample(logits, reqs)
        return tokens.tolist(), self._logprobs(raw, tokens, reqs)

    def _penalize(self, logits, reqs):
        """transformers' rule: a seen token's logit is divided by the penalty when positive, else multiplied."""
        rows = [i for i, r in enumerate(reqs) if r.params.repetition_penalty != 1.0]
        if not rows:
            return logits
        logits = logits.clone()
        for i in rows:
            seen = torch.tensor(sorted(set(reqs[i].all_ids)), device=logits.device)
            penalty = reqs[i].params.repetition_penalty
            picked = logits[i, seen]
            logits[i, seen] = torch.where(picked > 0, picked / penalty, picked * penalty)
        return logits

    def _sample(self, logits, reqs):
        params = [r.params for r in reqs]
        temps = torch.tensor([p.temperature or 1.0 for p in params], device=logits.device)
        scaled = logits / temps[:, None]
        top_k = [p.top_k if p.top_k > 0 else scaled.shape[-1] for p in params]
        top_p = torch.tensor([p.top_p for p in params], device=logits.device)
        if min(top_k) < scaled.shape[-1] or (top_p < 1).any():
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
        wanted = [r.params.logprobs for r in reqs]
        if all(n is None for n in wanted):
            return [None] * len(reqs)
        logprobs = torch.log_softmax(raw, dim=-1)
        n = max(w or 0 for w in wanted)
        top_vals, top_ids = logprobs.topk(n, dim=-1) if n else (logprobs[:, :0], tokens[:, None][:, :0])
        chosen = logprobs.gather(1, tokens[:, None]).squeeze(1)
        top_vals, top_ids, chosen = top_vals.tolist(), top_ids.tolist(), chosen.tolist()
        out = []
        for i, (w, tok) in enumerate(zip(wanted, tokens.tolist())):
            if w is None:
                out.append(None)
                continue
            d = dict(zip(top_ids[i][:w], top_vals[i][:w]))
            d[tok] = chosen[i]
            out.append(d)
        return out
