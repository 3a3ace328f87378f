"""Tasks on top of the engine: `pipeline(task, model=...)`, InferTask's registry look-ups, InferConfig presets."""
from .base import Task
from .config import InferConfig
from .infer_task import InferTask, pipeline

__all__ = ["InferConfig", "InferTask", "Task", "pipeline"]
