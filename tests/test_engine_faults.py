"""An exception at any stage of a step (admission, slot allocation, model forward, sampling, read-back,
detokenizing), KeyboardInterrupt included, leaves the pool, the table rows and the queues whole, and the next
request gives the same tokens as before."""
import pytest

from zooinfer import LLM, SamplingParams
from zooinfer.engine import LLMEngine
from zooinfer.engine.detokenizer import Detokenizer

pytestmark = pytest.mark.usefixtures("torch_single_thread")

PROMPTS = ["abc abc", "hello there, friend", "x"]
PARAMS = SamplingParams(max_new_tokens=6, temperature=0.8, seed=5, ignore_eos=True)


@pytest.fixture(scope="module")
def llm(tiny_llama_text_dir):
    return LLM(str(tiny_llama_text_dir), kv_cache_tokens=96, max_prefill_tokens=8)


@pytest.fixture(scope="module")
def reference(llm):
    return [o.text for o in llm.generate(PROMPTS, PARAMS)]


def assert_whole_and_working(llm, reference):
    llm.clear_cache()
    kv, engine = llm.model.kv_cache, llm.engine
    assert (kv.free_slot_count, kv.free_row_count) == (kv.num_slots, kv.max_requests)
    assert not engine.requests and not engine.scheduler.has_work() and not llm._tracked
    assert [o.text for o in llm.generate(PROMPTS, PARAMS)] == reference


def fail_on_call(monkeypatch, owner, name, nth, exc, after=False):
    """owner.name raises exc on its nth call, before doing its work or (after=True) once it is done."""
    real, calls = getattr(owner, name), []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == nth and not after:
            raise exc("injected failure")
        result = real(*args, **kwargs)
        if len(calls) == nth:
            raise exc("injected failure")
        return result
    monkeypatch.setattr(owner, name, failing)
    return calls


STAGES = {  # (object, attribute, failing call, after its work)
    "admission": (lambda llm: llm.engine.kv, "admit", 2, True),  # a request holds its row, not yet in the batch
    "slot allocation": (lambda llm: llm.model.kv_cache, "alloc_slots", 4, False),
    "model forward": (lambda llm: llm.model, "forward", 3, False),
    "after the forward": (lambda llm: llm.model, "forward", 3, True),
    "sampling": (lambda llm: llm.engine.sampler, "sample", 3, False),
    "read-back": (lambda llm: llm.engine.sampler, "to_host", 3, False),
    "detokenizing": (lambda llm: Detokenizer, "add", 5, False),
}


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize("stage", STAGES)
def test_failure_at_each_stage_leaves_the_engine_whole(llm, reference, monkeypatch, stage, exc):
    owner, name, nth, after = STAGES[stage]
    calls = fail_on_call(monkeypatch, owner(llm), name, nth, exc, after)
    with pytest.raises(exc, match="injected failure"):
        llm.generate(PROMPTS, PARAMS)
    assert len(calls) >= nth
    monkeypatch.undo()
    assert_whole_and_working(llm, reference)


def test_one_requests_failure_finishes_only_that_request(tiny_llama_text_dir, monkeypatch):
    """A failure in one request's own bookkeeping: it finishes with "error", the others run on."""
    engine = LLMEngine(str(tiny_llama_text_dir))
    real = Detokenizer.add

    def add(self, token_id):
        if self.stop == ["boom"]:
            raise UnicodeError("injected failure")
        return real(self, token_id)
    monkeypatch.setattr(Detokenizer, "add", add)
    engine.add_request("bad", "abc", SamplingParams(max_new_tokens=4, stop=["boom"], ignore_eos=True))
    engine.add_request("good", "abc", SamplingParams(max_new_tokens=4, temperature=0, ignore_eos=True))
    finished = {}
    while engine.has_unfinished():
        finished.update({o.request_id: o for o in engine.step() if o.finished})
    assert finished["bad"].finish_reason == "error" and isinstance(finished["bad"].error, UnicodeError)
    assert finished["good"].finish_reason == "length" and finished["good"].num_generated == 4
    engine.clear_cache()
    assert engine.model.kv_cache.free_slot_count == engine.model.kv_cache.num_slots


def test_a_failed_step_fails_its_batch_and_the_engine_goes_on(tiny_llama_text_dir, monkeypatch):
    engine = LLMEngine(str(tiny_llama_text_dir))
    fail_on_call(monkeypatch, engine.model, "forward", 2, RuntimeError)
    engine.add_request("a", "abc", SamplingParams(max_new_tokens=3, temperature=0, ignore_eos=True))
    engine.step()
    outputs = engine.step()
    assert [(o.request_id, o.finish_reason) for o in outputs] == [("a", "error")]
    assert "injected failure" in str(outputs[0].error)
    engine.add_request("b", "abc", SamplingParams(max_new_tokens=3, temperature=0, ignore_eos=True))
    while engine.has_unfinished():
        last = engine.step()
    assert last[0].finish_reason == "length"


def test_abort_at_any_time(tiny_llama_text_dir):
    engine = LLMEngine(str(tiny_llama_text_dir), kv_cache_tokens=64)
    kv = engine.model.kv_cache
    for i in range(3):
        engine.add_request(str(i), "hello", SamplingParams(max_new_tokens=20, ignore_eos=True))
    engine.abort("0")  # still waiting
    engine.step()
    engine.step()
    engine.abort("1")  # running
    engine.abort("1")  # twice, and ids never seen: ignored
    engine.abort("nobody")
    assert list(engine.requests) == ["2"]
    while engine.has_unfinished():
        engine.step()
    engine.abort("2")  # finished
    engine.clear_cache()
    assert (kv.free_slot_count, kv.free_row_count) == (kv.num_slots, kv.max_requests)
