from zooinfer.basemodel import TensorSpec, TransformerLayerWeight, weight_and_bias


def conv1d(attr: str, hf_prefix: str, shape: tuple, split_dim: int | None) -> dict:
    """A Conv1D and its bias: the weight is stored [in, out], read transposed into nn.Linear's [out, in] = shape.
    The bias follows an output split (dim 0); after an input split it is replicated, added once after the sum."""
    return {attr: [TensorSpec(f"{hf_prefix}.weight", shape, split_dim, transform="transpose")],
            f"{attr}_bias": [TensorSpec(f"{hf_prefix}.bias", (shape[0],), 0 if split_dim == 0 else None)]}


class GPT2TransformerLayerWeight(TransformerLayerWeight):
    """Attributes mirror the checkpoint names (attn_/mlp_ where both have a c_proj). c_attn holds the q, k and v
    blocks side by side; each block is split across ranks on its own, so a rank holds its heads' q, k and v."""

    def tensor_specs(self):
        c = self.config
        hidden, inter = c["hidden_size"], c["intermediate_size"]
        p = f"transformer.h.{self.layer_num}."
        blocks = [(i * hidden, (i + 1) * hidden) for i in range(3)]
        c_attn = {"c_attn": [TensorSpec(f"{p}attn.c_attn.weight", (hidden, hidden), 0, transform="conv1d_columns",
                                        transform_args=block) for block in blocks],
                  "c_attn_bias": [TensorSpec(f"{p}attn.c_attn.bias", (hidden,), 0, transform="rows",
                                             transform_args=block) for block in blocks]}
        return {**weight_and_bias("ln_1", f"{p}ln_1", (hidden,)), **c_attn,
                **conv1d("attn_c_proj", f"{p}attn.c_proj", (hidden, hidden), 1),
                **weight_and_bias("ln_2", f"{p}ln_2", (hidden,)),
                **conv1d("c_fc", f"{p}mlp.c_fc", (inter, hidden), 0),
                **conv1d("mlp_c_proj", f"{p}mlp.c_proj", (hidden, inter), 1)}

