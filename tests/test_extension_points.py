"""A plugin adds an op (its torch reference serves every backend that does not override it) and a weight
transform (applied as a checkpoint tensor is read), without editing the framework."""
import json

import pytest
import torch

from zooinfer import cli

from zooinfer.basemodel import TensorSpec, TransformerLayerWeight
from zooinfer.errors import PluginError
from zooinfer.plugins.torch_backend.backend import TorchBackend

CPU = torch.device("cpu")


def scaled_add_reference(ops, x, y, alpha: float):
    return ops.linear(x, torch.eye(x.shape[-1])) + alpha * y  # a reference may call the backend's other ops


class FastScaledAdd(TorchBackend):
    name = "fast-scaled-add-test"

    def scaled_add(self, x, y, alpha):
        return torch.add(x, y, alpha=alpha)


def test_a_plugin_op_runs_its_reference_unless_the_backend_overrides_it(register_plugin):
    x, y = torch.randn(3, 4), torch.randn(3, 4)
    with pytest.raises(AttributeError, match="no op 'scaled_add'"):
        TorchBackend(CPU).scaled_add(x, y, 2.0)
    register_plugin("scaled-add-op", ops=lambda registry: registry.register("scaled_add", scaled_add_reference))
    torch.testing.assert_close(TorchBackend(CPU).scaled_add(x, y, 2.0), x + 2 * y)
    assert FastScaledAdd(CPU).scaled_add.__func__ is FastScaledAdd.scaled_add
    torch.testing.assert_close(FastScaledAdd(CPU).scaled_add(x, y, 2.0), x + 2 * y)


def test_plugins_lists_ops_and_weight_transforms(register_plugin, capsys):
    register_plugin("scaled-add-op", ops=lambda registry: registry.register("scaled_add", scaled_add_reference))
    assert cli.main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [e["plugin"] for e in listing["ops"] if e["name"] == "scaled_add"] == ["scaled-add-op"]
    assert {"transpose", "rows"} <= {e["name"] for e in listing["weight_transforms"]}


class TwoHalves(TransformerLayerWeight):
    """A fused [a; b] checkpoint tensor taken apart with "rows", a Conv1D one transposed, a plugin's "negate"."""

    def tensor_specs(self):
        return {"a": [TensorSpec("fused.weight", (4, 6), 0, "rows", (0, 4))],
                "b": [TensorSpec("fused.weight", (2, 6), 0, "rows", (4, 6))],
                "conv": [TensorSpec("conv.weight", (4, 3), 0, "transpose")],
                "neg": [TensorSpec("neg.weight", (3,), None, "negate")]}


def load(weight, tensors):
    for name in weight.wanted_names():
        weight.load_hf_weight(name, tensors[name])
    assert weight.verify() == []
    weight.finish()
    return weight


def test_weight_transforms_apply_before_the_tensor_parallel_split(register_plugin):
    register_plugin("negate-transform", weight_transforms=lambda registry: registry.register("negate", torch.neg))
    tensors = {"fused.weight": torch.randn(6, 6), "conv.weight": torch.randn(3, 4), "neg.weight": torch.randn(3)}
    whole = load(TwoHalves(0, {}, 0, 1, torch.float32, CPU), tensors)
    assert torch.equal(whole.a, tensors["fused.weight"][:4]) and torch.equal(whole.b, tensors["fused.weight"][4:])
    assert torch.equal(whole.conv, tensors["conv.weight"].t()) and torch.equal(whole.neg, -tensors["neg.weight"])
    rank1 = load(TwoHalves(0, {}, 1, 2, torch.float32, CPU), tensors)
    assert torch.equal(rank1.a, tensors["fused.weight"][2:4]) and torch.equal(rank1.b, tensors["fused.weight"][5:6])


def test_an_unregistered_transform_is_named():
    with pytest.raises(PluginError, match="weight transform 'negate'"):
        TwoHalves(0, {}, 0, 1, torch.float32, CPU)


def test_a_transform_that_fails_is_reported_by_tensor_name(register_plugin):
    register_plugin("negate-transform", weight_transforms=lambda registry: registry.register("negate", torch.neg))
    weight = TwoHalves(0, {}, 0, 1, torch.float32, CPU)
    weight.load_hf_weight("fused.weight", torch.randn(5, 6))
    assert any("fused.weight" in p and "rows [4, 6)" in p for p in weight.verify())
