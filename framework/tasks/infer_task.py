"""InferTask (the task registry's front door) and pipeline(), the one-line way to run a task."""
from __future__ import annotations

from dataclasses import fields as dataclass_fields
from os import PathLike

from zooinfer.errors import ZooinferError
from zooinfer.plugin_manager import task_registry

from .base import Task
from .config import InferConfig


class InferTask:
    """Looks tasks up in the registry that `zooinfer_register_tasks` plugins fill."""

    @staticmethod
    def support_list() -> list[str]:
        return task_registry().names()

    @staticmethod
    def check_task_valid(task: str) -> bool:
        return isinstance(task, str) and task in task_registry()

    @staticmethod
    def get_infer_task(task: str, config: InferConfig, llm=None) -> Task:
        """The task `task` ready to run with `config` (on `llm` if given, else an engine built from config)."""
        if not isinstance(config, InferConfig):
            raise ZooinferError(f"get_infer_task needs an InferConfig, got {type(config).__name__}")
        if not isinstance(task, str):
            raise ZooinferError(f"a task is named by a string, got {task!r}")
        cls = task_registry().get(task)  # an unknown name: a PluginError listing the registered tasks
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise ZooinferError(f"task {task!r} is registered as {cls!r}, which is not a zooinfer.tasks.Task")
        return cls(config, llm)


def pipeline(task: str = "text_generation", model: str | None = None, backend: str | None = None,
             config: InferConfig | str | None = None, **fields) -> Task:
    """pipeline("score", model="dir", device="cuda") -> a callable task. `config` is an InferConfig or a YAML
    preset; `model`, `backend` and any other InferConfig field given here override it."""
    given = {k: v for k, v in {"model": model, "backend": backend, **fields}.items() if v is not None}
    known = [f.name for f in dataclass_fields(InferConfig)]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ZooinferError(f"pipeline() got {unknown[0]!r}, which is not an InferConfig field; "
                            f"known: {', '.join(known)}")
    if isinstance(config, (str, PathLike)):
        config = InferConfig.from_yaml(config, **given)
    elif config is None or isinstance(config, InferConfig):
        config = InferConfig(**{**(config.as_dict() if config else {}), **given})
    else:
        raise ZooinferError(f"pipeline(config=...) takes an InferConfig or a YAML path, got {type(config).__name__}")
    if not InferTask.check_task_valid(task):
        raise ZooinferError(f"unknown task {task!r}; supported: {', '.join(InferTask.support_list())}")
    return InferTask.get_infer_task(task, config)
