"""The torch backend's sliding window and softcap against scores written out by hand (the conformance suite
checks every other backend against the torch backend, so the reference itself is checked here)."""
import torch

from zooinfer.plugins.torch_backend.backend import TorchBackend

OPS = TorchBackend(torch.device("cpu"))


def naive(q, k, v, scale, window, softcap):
    """q [m, H, D] for the last m of l positions; k, v [l, H, D]: one loop per query, no broadcasting tricks."""
    m, l = q.shape[0], k.shape[0]
    out = torch.empty_like(q)
    for i in range(m):
        p = l - m + i
        s = torch.einsum("hd,lhd->hl", q[i], k[: p + 1]) * scale
        if softcap is not None:
            s = softcap * torch.tanh(s / softcap)
        keep = torch.tensor([p - j < window if window else True for j in range(p + 1)])
        s = s.masked_fill(~keep, float("-inf"))
        out[i] = torch.einsum("hl,lhd->hd", s.softmax(-1), v[: p + 1])
    return out


def test_window_and_softcap_match_the_written_out_scores():
    torch.manual_seed(0)
    heads, dim, length, ready = 2, 8, 11, 4
    kv_cache = torch.randn(length, 2 * heads, dim)
    req_to_token = torch.arange(length, dtype=torch.int32)[None]
    q = torch.randn(length - ready, heads, dim) * 3
    k, v = kv_cache[:, :heads], kv_cache[:, heads:]
    i32 = lambda *x: torch.tensor(x, dtype=torch.int32)  # noqa: E731
    for window, softcap in [(1, None), (3, None), (None, 1.5), (4, 2.0)]:
        expected = naive(q, k, v, 0.3, window, softcap)
        got = OPS.context_attention(q, kv_cache, req_to_token, i32(0), i32(0), i32(length), i32(ready),
                                    length - ready, 0.3, None, window, softcap)
        torch.testing.assert_close(got, expected)
        last = OPS.token_attention(q[-1:], kv_cache, req_to_token, i32(0), i32(length), length, 0.3, None,
                                   window, softcap)
        torch.testing.assert_close(last, expected[-1:])
