"""Which GELU a transformers activation name means, for families whose config names their activation."""
from zooinfer.errors import ZooinferError

# transformers' ACT2FN names -> the `approximate` argument of the gelu ops
GELU_APPROXIMATIONS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu_fast": "tanh"}


def gelu_approximation(family: str, key: str, name) -> str:
    """"tanh" or "none" for the activation `name` of config field `key`; a one-line error for anything else."""
    if name not in GELU_APPROXIMATIONS:
        raise ZooinferError(f"{family} {key} {name!r} is not supported (choose one of: "
                            f"{', '.join(GELU_APPROXIMATIONS)})")
    return GELU_APPROXIMATIONS[name]
