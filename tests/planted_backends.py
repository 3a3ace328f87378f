"""Backends with one planted bug each, for the kit's own tests (test_kit.py). Loaded into a kit run with
`-p planted_backends`, it registers them with zooinfer's plugin manager; with `-p planted_backends` and
ZOOINFER_KIT_EXAMPLE=1 it registers the example backend from examples/ instead, for a checkout that has not
installed it."""
import os
import sys
import types
from pathlib import Path

import torch

from zooinfer import hookimpl
from zooinfer.plugin_manager import get_plugin_manager
from zooinfer.plugins.torch_backend.backend import TorchBackend

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "zooinfer-example-backend"


class WrongEpsBackend(TorchBackend):
    """rmsnorm with the epsilon most checkpoints use, whatever the model says."""
    name = "wrong-eps"

    def rmsnorm(self, x, weight, eps, residual=None):
        return super().rmsnorm(x, weight, 1e-6, residual)


class WrongGqaBackend(TorchBackend):
    """Decode attention where query head h reads kv head h % Hk (interleaved) instead of h // (Hq / Hk)."""
    name = "wrong-gqa"

    def token_attention(self, q, kv_cache, req_to_token, b_req_idx, b_seq_len, max_len, scale, alibi_slopes=None,
                        sliding_window=None, softcap=None):
        kv_heads = kv_cache.shape[1] // 2
        heads = torch.arange(q.shape[1], device=q.device)
        place = (heads % kv_heads) * (q.shape[1] // kv_heads) + heads // kv_heads  # where the reference reads it
        placed_q = torch.empty_like(q)
        placed_q[:, place] = q
        slopes = None
        if alibi_slopes is not None:
            slopes = torch.empty_like(alibi_slopes)
            slopes[place] = alibi_slopes
        out = super().token_attention(placed_q, kv_cache, req_to_token, b_req_idx, b_seq_len, max_len, scale, slopes,
                                      sliding_window, softcap)
        return out[:, place]


class NoCachedPrefixBackend(TorchBackend):
    """Prefill attention over the new tokens only: a prefix cached by earlier steps is never attended to."""
    name = "no-cached-prefix"

    def context_attention(self, q, kv_cache, req_to_token, b_req_idx, b_start_loc, b_seq_len, b_ready_cache_len,
                          max_new_len, scale, alibi_slopes=None, sliding_window=None, softcap=None):
        out = torch.empty_like(q)
        n_rep = q.shape[1] // (kv_cache.shape[1] // 2)
        for req, start, seq_len, ready in zip(b_req_idx.tolist(), b_start_loc.tolist(), b_seq_len.tolist(),
                                              b_ready_cache_len.tolist()):
            k, v = self._gather_kv(kv_cache, req_to_token, req, seq_len, n_rep)
            positions = torch.arange(seq_len, device=q.device)[ready:]
            new = slice(start, start + seq_len - ready)
            out[new] = self._attend(q[new], k[ready:], v[ready:], positions, positions, scale, alibi_slopes,
                                    sliding_window, softcap)
        return out


PLANTED = {cls.name: cls for cls in (WrongEpsBackend, WrongGqaBackend, NoCachedPrefixBackend)}


def pytest_configure(config):
    if os.environ.get("ZOOINFER_KIT_EXAMPLE") == "1":
        sys.path.insert(0, str(EXAMPLE))
        from zooinfer_example_backend import plugin
        get_plugin_manager().register(plugin, name="example")
        return

    def register(registry):
        for name, cls in PLANTED.items():
            registry.register(name, cls)
    get_plugin_manager().register(types.SimpleNamespace(zooinfer_register_backends=hookimpl(register)),
                                  name="planted-backends")
