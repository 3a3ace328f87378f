"""How far a backend's op result is from the torch reference's, said in one line a vendor can act on:
the op, its arguments' shapes and dtypes, and the worst element."""
from __future__ import annotations

import inspect

import torch


def describe_call(reference, op: str, args: tuple, kwargs: dict | None = None) -> str:
    """'rmsnorm(x=[5, 64] float32, weight=[64] float32, eps=1e-06, residual=None)'."""
    bound = inspect.signature(getattr(reference, op)).bind(*args, **(kwargs or {}))
    return f"{op}({', '.join(f'{k}={_describe(v)}' for k, v in bound.arguments.items())})"


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"{list(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    return repr(value)


def worst_difference(actual: torch.Tensor, expected: torch.Tensor, tol: float) -> tuple[float, float, tuple]:
    """(how many tolerances off the worst element is, its |difference|, its index); NaN where both are NaN is
    agreement, NaN on one side only is infinitely far."""
    a, e = actual.detach().float().cpu(), expected.detach().float().cpu()
    diff = (a - e).abs()
    both_nan = a.isnan() & e.isnan()
    diff = torch.where(both_nan, 0.0, diff.nan_to_num(nan=float("inf")))
    ratio = diff / (tol + tol * e.abs().nan_to_num(0.0)) if tol > 0 else torch.where(diff > 0, float("inf"), 0.0)
    if ratio.numel() == 0:
        return 0.0, 0.0, ()
    flat = int(ratio.argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), ratio.shape))
    return float(ratio.view(-1)[flat]), float(diff.view(-1)[flat]), index


def mismatch(what: str, actual, expected, tol: float) -> str | None:
    """None when actual matches expected within tol (relative and absolute), else why not, in one line."""
    if actual.shape != expected.shape or actual.dtype != expected.dtype:
        return (f"{what}: {_describe(actual)} where the torch reference gives {_describe(expected)}")
    ratio, diff, index = worst_difference(actual, expected, tol)
    if ratio <= 1.0:
        return None
    return (f"{what}: max |difference| {diff:.3g} at {list(index)} (backend {float(actual[index]):.6g}, "
            f"reference {float(expected[index]):.6g}; tolerance {tol:g})")
