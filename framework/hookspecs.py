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
def zooinfer_register_tasks(registry):
    """Register pipeline tasks: registry.register(task_name, cls_or_"module:Class", override=False)."""
