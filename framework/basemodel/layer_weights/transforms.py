"""The built-in weight transforms, registered through the same hook as a plugin's (entry point in setup.cfg).
A TensorSpec names one with `transform` and `transform_args`; it runs on the whole checkpoint tensor as it is
read, before the shape check and the tensor-parallel split."""
from zooinfer.hookspecs import hookimpl


def transpose(tensor):
    """[in, out] -> [out, in]: GPT-2's Conv1D stores its weight transposed to nn.Linear's."""
    return tensor.t()


def rows(tensor, start: int, stop: int):
    """Rows [start, stop) of a fused tensor laid out as consecutive blocks (Phi-3's qkv_proj, gate_up_proj), so
    each block is split across ranks on its own."""
    if not 0 <= start < stop <= tensor.shape[0]:
        raise ValueError(f"rows [{start}, {stop}) are outside a tensor of {tensor.shape[0]} rows")
    return tensor[start:stop]


@hookimpl
def zooinfer_register_weight_transforms(registry):
    registry.register("transpose", transpose)
    registry.register("rows", rows)
