"""The torch backend's shortcuts give exactly what the long way gives: float32 rmsnorm in one call, rotary over
q and k side by side in one pass, and token_attention's indexes computed once a step and never reused stale."""
import pytest
import torch
import torch.nn.functional as F

from zooinfer.plugins.torch_backend.backend import TorchBackend

pytestmark = pytest.mark.usefixtures("torch_single_thread")
CPU = torch.device("cpu")


def test_float32_rmsnorm_is_the_general_formula_bit_for_bit():
    gen = torch.Generator().manual_seed(0)
    x, residual, weight = (torch.randn(shape, generator=gen) for shape in ((5, 96), (5, 96), (96,)))
    normed, summed = TorchBackend(CPU).rmsnorm(x, weight, 1e-5, residual)
    assert torch.equal(summed, x + residual)
    assert torch.equal(normed, weight * F.rms_norm(x + residual, (96,), eps=1e-5))


def rotate_separately(q, k, cos, sin):
    ops = TorchBackend(CPU)
    q, k = q.clone(), k.clone()
    ops.rotary(q, k, cos, sin)  # separate tensors: not side by side in memory
    return q, k


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("rotary_dim", [16, 8])  # whole heads, and partial rotary's strided views
def test_rotary_over_a_fused_projection_equals_two_passes(n, rotary_dim):
    gen = torch.Generator().manual_seed(n)
    hq, hk, d = 4, 2, 16
    qkv = torch.randn(n, (hq + 2 * hk) * d, generator=gen)
    q, k, v = qkv.split([hq * d, hk * d, hk * d], dim=-1)
    q, k = q.view(n, hq, d)[..., :rotary_dim], k.view(n, hk, d)[..., :rotary_dim]
    cos, sin = torch.randn(n, rotary_dim // 2, generator=gen), torch.randn(n, rotary_dim // 2, generator=gen)
    want_q, want_k = rotate_separately(q, k, cos, sin)
    v_before, rest_before = v.clone(), qkv.view(n, hq + 2 * hk, d)[..., rotary_dim:].clone()
    TorchBackend(CPU).rotary(q, k, cos, sin)
    assert torch.equal(q, want_q) and torch.equal(k, want_k)
    assert torch.equal(v, v_before) and torch.equal(qkv.view(n, hq + 2 * hk, d)[..., rotary_dim:], rest_before)


def decode_case(lengths, max_len=12, slots=64):
    gen = torch.Generator().manual_seed(len(lengths))
    kv = torch.randn(slots, 4, 8, generator=gen)  # 2 kv heads
    table = torch.randperm(slots, generator=gen)[:len(lengths) * max_len].view(len(lengths), max_len).int()
    q = torch.randn(len(lengths), 4, 8, generator=gen)
    return q, kv, table, torch.arange(len(lengths), dtype=torch.int32), torch.tensor(lengths, dtype=torch.int32)


def test_token_attention_reuses_its_indexes_only_for_the_same_unchanged_step():
    ops, fresh = TorchBackend(CPU), TorchBackend(CPU)
    q, kv, table, rows, lengths = decode_case([5, 9])

    def both():
        out = ops.token_attention(q, kv, table, rows, lengths, 9, 0.3)
        torch.testing.assert_close(out, fresh.token_attention(q, kv, table, rows, lengths, 9, 0.3), rtol=0, atol=0)
        fresh._decode_index = type(fresh._decode_index)()  # the reference never remembers
        return out

    first = both()
    assert torch.equal(both(), first)  # a second layer of the same step
    lengths[0] = 9  # the next step's lengths written into the same tensor: a miss, not the old masks
    assert not torch.equal(both(), first)
    table[1, :9] = table[1, :9].flip(0)  # the table rewritten in place: a miss too
    both()
    ops.token_attention(q, kv, table, rows, lengths.clone(), 9, 0.3, sliding_window=3)  # other tensors, window
    both()
