"""Which op makes a model diverge: run it with every op call also made on the torch reference, from the same
inputs, and name the first call whose results differ (outputs, and the tensors an op writes in place).

The model runs on the backend's results, as it would alone, so the first call that differs is where the
backend's numbers leave the reference's; later calls are compared from that backend state onwards."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from zooinfer.testing.diff import describe_call, mismatch


@dataclass
class OpCall:
    index: int  # among all op calls of the run
    op: str
    description: str  # the op and its arguments' shapes
    problem: str | None  # None when it matched the reference


def _clone(value):
    return value.clone() if isinstance(value, torch.Tensor) else value


def _tensors(value) -> list:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


class CheckedOps:
    """Stands in for a backend instance: each op runs on the backend and on the reference, and is recorded."""

    def __init__(self, backend, reference, tol: float):
        self._backend, self._reference, self._tol = backend, reference, tol
        self.calls: list[OpCall] = []

    def __getattr__(self, name):
        attr = getattr(self._backend, name)
        if name.startswith("_") or not callable(attr) or not callable(getattr(self._reference, name, None)):
            return attr

        def checked(*args, **kwargs):
            ref_args, ref_kwargs = [_clone(a) for a in args], {k: _clone(v) for k, v in kwargs.items()}
            expected = getattr(self._reference, name)(*ref_args, **ref_kwargs)
            actual = attr(*args, **kwargs)
            self._record(name, (args, kwargs, actual), (ref_args, ref_kwargs, expected))
            return actual
        return checked

    def _record(self, op, ours, theirs):
        args, kwargs, actual = ours
        inputs = (args, list(kwargs.values()))
        what = ["result"] * len(_tensors(actual)) + ["argument (written in place)"] * len(_tensors(inputs))
        expected = (theirs[2], theirs[0], list(theirs[1].values()))
        problems = (mismatch(w, a, e, self._tol) for w, a, e in
                    zip(what, _tensors((actual, *inputs)), _tensors(expected)))
        problem = next((p for p in problems if p is not None), None)
        self.calls.append(OpCall(len(self.calls), op, describe_call(self._reference, op, args, kwargs), problem))

    def first_divergence(self) -> OpCall | None:
        return next((c for c in self.calls if c.problem is not None), None)

    def report(self) -> str:
        first = self.first_divergence()
        if first is None:
            return (f"every one of the {len(self.calls)} op calls matched the torch reference within {self._tol:g}: "
                    "no single op is at fault (look at how differences add up, or at ops the model calls "
                    "outside the backend)")
        nth = sum(c.op == first.op for c in self.calls[:first.index + 1])
        return (f"first op to diverge from the torch reference: {first.op} (op call {first.index + 1} of the run, "
                f"call {nth} of {first.op}) {first.description}: {first.problem}")


def locate_divergence(model_dir, backend_class, device, prompts: list[list[int]], steps: int,
                      tol: float = 1e-4) -> str:
    """Greedy decoding of `prompts` (one batched prefill, then decode steps) with every op checked; the report."""
    from pathlib import Path

    from zooinfer.engine.loading import read_config
    from zooinfer.plugin_manager import model_registry
    from zooinfer.plugins.torch_backend.backend import TorchBackend
    from zooinfer.tools.compare import zooinfer_greedy

    config = read_config(Path(model_dir))
    model_class = model_registry().get(config["model_type"])
    ops = CheckedOps(backend_class(device), TorchBackend(device), tol)
    slots = sum(map(len, prompts)) + len(prompts) * steps + 1
    model = model_class(model_dir, config, ops, torch.float32, kv_cache_tokens=slots, max_requests=len(prompts))
    zooinfer_greedy(model, prompts, steps)
    return ops.report()
