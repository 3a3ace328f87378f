"""The plugin contract: the hooks a zooinfer plugin may implement."""
import pluggy

hookspec = pluggy.HookspecMarker("zooinfer")
hookimpl = pluggy.HookimplMarker("zooinfer")


@hookspec
def zooinfer_register_models(registry):
    """Register model families: registry.register(model_type, cls_or_"module:Class", override=False)."""


@hookspec
def zooinfer_register_backends(registry):
    """Register op backends: registry.register(name, cls_or_"module:Class", override=False)."""


@hookspec
def zooinfer_register_ops(registry):
    """Register ops beyond framework/ops.py: registry.register(op_name, torch_reference_fn_or_"module:fn"); the
    reference is called as fn(backend, *args) on every backend that has no method of that name."""


@hookspec
def zooinfer_register_weight_transforms(registry):
    """Register weight transforms: registry.register(name, fn_or_"module:fn"); fn(tensor, *transform_args) -> tensor
    is applied to a checkpoint tensor whose TensorSpec names it, as it is read."""


@hookspec
def zooinfer_register_tasks(registry):
    """Register pipeline tasks: registry.register(task_name, cls_or_"module:Class", override=False)."""


@hookspec
def zooinfer_register_quantizations(registry):
    """Register weight-only quantizations: registry.register(name, Quantization subclass or "module:Class")."""
