"""Entry point of the gpt2 family: registered exactly like a third-party model, with the weight transform its
fused c_attn needs."""
from zooinfer import hookimpl


@hookimpl
def zooinfer_register_models(registry):
    registry.register("gpt2", "zooinfer.models.gpt2.model:GPT2TpPartModel")


@hookimpl
def zooinfer_register_weight_transforms(registry):
    registry.register("conv1d_columns", conv1d_columns)


def conv1d_columns(tensor, start: int, stop: int):
    """Output features [start, stop) of a Conv1D weight ([in, out]) as nn.Linear's [out, in] rows: one block
    (q, k or v) of GPT-2's fused c_attn."""
    if not 0 <= start < stop <= tensor.shape[1]:
        raise ValueError(f"columns [{start}, {stop}) are outside a Conv1D weight of {tensor.shape[1]} outputs")
    return tensor[:, start:stop].t()
