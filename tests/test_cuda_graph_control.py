"""Graph control on a machine without a GPU: the statistics' shape, the disabled path, refused switching on.
What graphs do on a GPU is tested in test_gpu.py."""
import pytest

from zooinfer import LLM, SamplingParams
from zooinfer.errors import ZooinferError

pytestmark = pytest.mark.usefixtures("torch_single_thread")

KEYS = {"enabled", "cache_size", "cache_hits", "cache_misses", "recordings", "replays", "eager_fallbacks",
        "cached_shapes", "hit_rate"}


@pytest.fixture(scope="module")
def llm(tiny_llama_dir):
    return LLM(str(tiny_llama_dir), kv_cache_tokens=64, max_batch_size=2)


def test_stats_on_cpu(llm):
    llm.generate(prompt_token_ids=[1, 2, 3], sampling_params=SamplingParams(max_new_tokens=3, temperature=0))
    stats = llm.get_stats()["cuda_graph"]
    assert set(stats) == KEYS
    assert stats == {**dict.fromkeys(KEYS, 0), "enabled": False, "cached_shapes": [], "hit_rate": 0.0}


def test_switching_on_is_refused_on_cpu_and_the_engine_keeps_working(llm):
    with pytest.raises(ZooinferError, match="need a CUDA device; this LLM runs on cpu") as exc:
        llm.set_cuda_graph_enabled(True)
    assert "\n" not in str(exc.value)
    with pytest.raises(ZooinferError, match="True or False, got 'yes'"):
        llm.set_cuda_graph_enabled("yes")
    llm.set_cuda_graph_enabled(False)  # already off: allowed
    llm.clear_cache()
    out = llm.generate(prompt_token_ids=[4, 5], sampling_params=SamplingParams(max_new_tokens=2, temperature=0))
    assert len(out[0].token_ids) == 2 and not llm.get_stats()["cuda_graph"]["enabled"]
