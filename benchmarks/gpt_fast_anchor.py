"""A gpt-fast-style anchor: a plain PyTorch Llama with a static KV cache whose decode step is compiled with
torch.compile(mode="reduce-overhead") (CUDA graphs of the whole step), on the same weights as the model under
test. What a careful hand-written PyTorch decoder reaches on this card, timed in the same run as zooinfer.

Usage: decode_rate(hf_model, prompt_ids, new_tokens) -> tokens/s at batch 1 (decode only, prefill excluded).
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F


class StaticLlama(torch.nn.Module):
    """Llama decoder over a transformers LlamaForCausalLM's weights: fused qkv and gate/up, a static cache
    [layers, B, kv_heads, max_len, head_dim], rotary from precomputed tables (plain rope only)."""

    def __init__(self, hf_model, max_len: int, batch: int = 1):
        super().__init__()
        c = hf_model.config
        self.heads, self.kv_heads = c.num_attention_heads, c.num_key_value_heads
        self.head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        self.eps = c.rms_norm_eps
        m = hf_model.model
        # Buffers, not plain attributes: the compiler's CUDA graphs then treat the weights as static and the
        # in-place cache writes as the module's own state (a mutated plain tensor would skip the graphs).
        self.register_buffer("embed", m.embed_tokens.weight)
        self.register_buffer("norm", m.norm.weight)
        self.register_buffer("lm_head", hf_model.lm_head.weight)
        self.num_layers = len(m.layers)
        for i, layer in enumerate(m.layers):
            a, p = layer.self_attn, layer.mlp
            for name, w in (("wqkv", torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])),
                            ("wo", a.o_proj.weight), ("w13", torch.cat([p.gate_proj.weight, p.up_proj.weight])),
                            ("w2", p.down_proj.weight), ("ln1", layer.input_layernorm.weight),
                            ("ln2", layer.post_attention_layernorm.weight)):
                self.register_buffer(f"{name}_{i}", w)
        dev, dt = self.embed.device, self.embed.dtype
        shape = (self.num_layers, batch, self.kv_heads, max_len, self.head_dim)
        self.register_buffer("k_cache", torch.zeros(shape, device=dev, dtype=dt))
        self.register_buffer("v_cache", torch.zeros(shape, device=dev, dtype=dt))
        theta = getattr(c, "rope_theta", None) or (getattr(c, "rope_parameters", None) or {}).get("rope_theta", 1e4)
        inv = 1.0 / theta ** (torch.arange(0, self.head_dim, 2, device=dev, dtype=torch.float32) / self.head_dim)
        angles = torch.outer(torch.arange(max_len, device=dev, dtype=torch.float32), inv)
        self.register_buffer("cos", angles.cos())
        self.register_buffer("sin", angles.sin())
        self.register_buffer("causal", torch.tril(torch.ones(max_len, max_len, dtype=torch.bool, device=dev)))

    def _rms(self, x, w):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * w

    def _rope(self, x, pos):  # x [B, H, T, D], rotate-half layout as transformers' Llama checkpoints use
        cos, sin = self.cos[pos][None, None], self.sin[pos][None, None]
        x1, x2 = x.float().chunk(2, dim=-1)
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)

    def forward(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """ids [B, T] at positions pos [T] -> logits of the last position [B, V]."""
        b, t = ids.shape
        x = F.embedding(ids, self.embed)
        mask = self.causal[pos][None, None]
        q_size, kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
        for i in range(self.num_layers):
            w = {name: getattr(self, f"{name}_{i}") for name in ("wqkv", "wo", "w13", "w2", "ln1", "ln2")}
            h = self._rms(x, w["ln1"])
            q, k, v = F.linear(h, w["wqkv"]).split([q_size, kv_size, kv_size], dim=-1)
            q = self._rope(q.view(b, t, self.heads, self.head_dim).transpose(1, 2), pos)
            k = self._rope(k.view(b, t, self.kv_heads, self.head_dim).transpose(1, 2), pos)
            v = v.view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
            self.k_cache[i][:, :, pos] = k
            self.v_cache[i][:, :, pos] = v
            o = F.scaled_dot_product_attention(q, self.k_cache[i], self.v_cache[i], attn_mask=mask,
                                               enable_gqa=self.heads != self.kv_heads)
            x = x + F.linear(o.transpose(1, 2).reshape(b, t, q_size), w["wo"])
            gate, up = F.linear(self._rms(x, w["ln2"]), w["w13"]).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, w["w2"])
        return F.linear(self._rms(x[:, -1], self.norm), self.lm_head)


@torch.inference_mode()
def decode_rate(hf_model, prompt_ids: list[int], new_tokens: int) -> float:
    """Greedy batch-1 decode tokens/s of the compiled static-cache model (compile and warm-up not timed)."""
    max_len = len(prompt_ids) + new_tokens + 8
    # gpt-fast's compiler settings: coordinate-descent tuning is what makes its matrix-vector kernels fast
    torch._inductor.config.coordinate_descent_tuning = True
    torch._inductor.config.triton.unique_kernel_names = True
    torch._inductor.config.fx_graph_cache = True
    model = StaticLlama(hf_model, max_len)
    decode = torch.compile(model, mode="reduce-overhead", fullgraph=True)
    dev = model.embed.device

    def run(steps: int) -> float:
        ids = torch.tensor([prompt_ids], device=dev)
        token = model(ids, torch.arange(len(prompt_ids), device=dev)).argmax(-1, keepdim=True)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for p in range(len(prompt_ids), len(prompt_ids) + steps):
            token = decode(token, torch.tensor([p], device=dev)).argmax(-1, keepdim=True).clone()
        torch.cuda.synchronize()
        return time.perf_counter() - start

    ids = torch.tensor([prompt_ids], device=dev)
    ours, ref = model(ids, torch.arange(len(prompt_ids), device=dev)).float(), hf_model(ids).logits[:, -1].float()
    # bf16 rounding over many random layers moves logits by several percent; a wrong computation is far off
    similarity = float(F.cosine_similarity(ours, ref, dim=-1).min())
    if similarity < 0.99:  # an anchor that computes something else would time something else
        raise RuntimeError(f"anchor logits disagree with transformers' (cosine similarity {similarity:.4f})")
    run(8)  # compiles and records the graph
    run(8)
    return new_tokens / run(new_tokens)
