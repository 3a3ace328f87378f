from .llm import LLM
from .llm_engine import LLMEngine
from .outputs import CompletionOutput, RequestOutput, StepOutput
from .sampling_params import SamplingParams

__all__ = ["LLM", "LLMEngine", "CompletionOutput", "RequestOutput", "StepOutput", "SamplingParams"]
