"""The layer template's residual wiring, on hooks simple enough to write the expected result by hand."""
import pytest
import torch

from zooinfer.basemodel import TransformerLayerInfer


class Affine(TransformerLayerInfer):
    """Norms scale, attention and MLP are fixed matrices: every branch leaves a distinct trace."""

    def __init__(self, parallel, from_norm):
        config = dict(head_dim=4, num_attention_heads=2, num_key_value_heads=2)
        super().__init__(0, config, ops=None)
        self.parallel_residual, self.residual_from_norm = parallel, from_norm
        torch.manual_seed(0)
        self.a, self.f = torch.randn(8, 8), torch.randn(8, 8)

    def _att_norm(self, x, residual, weight):
        summed = x if residual is None else x + residual
        return 2 * summed, summed

    def _ffn_norm(self, x, residual, weight):
        summed = x if residual is None else x + residual
        return 3 * summed, summed

    def _attention(self, x, state, weight):
        return x @ self.a

    def _ffn(self, x, state, weight):
        return x @ self.f


@pytest.mark.parametrize("parallel, from_norm", [(False, False), (False, True), (True, False)])
def test_residual_wiring(parallel, from_norm):
    layer, x = Affine(parallel, from_norm), torch.randn(5, 8)
    attn = (2 * x) @ layer.a
    if parallel:
        expected = x + attn + (3 * x) @ layer.f
    elif from_norm:  # BLOOM: the residual is the normed input, twice
        h = attn + 2 * x
        expected = (3 * h) @ layer.f + 3 * h
    else:
        h = x + attn
        expected = h + (3 * h) @ layer.f
    out, residual = layer.context_forward(x.clone(), None, None)
    torch.testing.assert_close(out + residual, expected)


@pytest.mark.parametrize("parallel, from_norm", [(False, False), (False, True), (True, False)])
def test_a_residual_handed_in_is_added_before_the_first_norm(parallel, from_norm):
    """The previous layer's pending add (x + residual) gives what the summed input alone gives."""
    layer, x, r = Affine(parallel, from_norm), torch.randn(5, 8), torch.randn(5, 8)
    carried = sum(layer.context_forward(x.clone(), None, None, r.clone()))
    torch.testing.assert_close(carried, sum(layer.context_forward(x + r, None, None)))
