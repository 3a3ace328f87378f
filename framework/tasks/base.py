"""What every task shares: an InferConfig and the LLM engine built from it."""
from __future__ import annotations

from .config import InferConfig


class Task:
    """A job run on an LLM (generate text, chat, score texts). A plugin adds one by subclassing this and
    registering it from `zooinfer_register_tasks`; `__call__` does the job."""

    description = ""

    def __init__(self, config: InferConfig, llm=None):
        from zooinfer.engine.llm import LLM

        self.config = config
        self.llm = llm if llm is not None else LLM(**config.engine_kwargs())

    def __call__(self, inputs, **kwargs):
        raise NotImplementedError
