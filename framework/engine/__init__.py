from .llm import LLM
from .request import RequestOutput
from .sampling_params import SamplingParams

__all__ = ["LLM", "RequestOutput", "SamplingParams"]
