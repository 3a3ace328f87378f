"""The backend kit (zooinfer.testing) run as a vendor runs it, `pytest --pyargs zooinfer.testing --zooinfer-backend
NAME`, on backends registered through the plugin manager (planted_backends.py): the example backend passes, and
backends with a planted bug fail with the op named, its shapes and the worst difference."""
import os
from pathlib import Path

import pytest

from zooinfer.plugin_manager import backend_registry

pytest_plugins = ["pytester"]

TESTS = Path(__file__).resolve().parent


def run_kit(pytester, monkeypatch, backend, *selection, example=False):
    """The kit in a fresh process (a second in-process run would import native extensions twice), with the
    planted backends (or the example) registered by tests/planted_backends.py."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("ZOOINFER_KIT_EXAMPLE", "1" if example else "0")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "planted_backends", "--pyargs",
                                         "zooinfer.testing", "--zooinfer-backend", backend, "--zooinfer-device",
                                         "cpu", *selection, timeout=600)


def test_the_example_backend_passes(pytester, monkeypatch):
    """Its own op and a whole model through it; `make test` runs the full kit on it, installed."""
    installed = "example" in backend_registry()
    result = run_kit(pytester, monkeypatch, "example", "-k", "silu_and_mul or llama-gqa", example=not installed)
    result.assert_outcomes(passed=5)


def test_a_backend_nobody_registered_is_a_usage_error(pytester, monkeypatch):
    result = run_kit(pytester, monkeypatch, "no-such-backend")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--zooinfer-backend no-such-backend: no plugin registers the backend*"])


def test_wrong_eps_is_named(pytester, monkeypatch):
    result = run_kit(pytester, monkeypatch, "wrong-eps", "-k", "rmsnorm and float32 and 64 or llama-rms_norm_eps")
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 3 and outcomes["passed"] == 2  # eps 0.5 fails, 1e-6 cannot tell; the model fails
    result.stdout.fnmatch_lines([  # in order: the model module runs first
        "*llama rms_norm_eps on wrong-eps (cpu): against transformers*",
        "*first op to diverge from the torch reference: rmsnorm (op call 2 of the run, call 1 of rmsnorm)*eps=0.01*",
        "*normed of rmsnorm(x=[[]5, 64[]] float32, weight=[[]64[]] float32, eps=0.5, residual=*: "
        "max |difference| * at *tolerance 1e-05*"])


def test_wrong_gqa_mapping_is_named(pytester, monkeypatch):
    result = run_kit(pytester, monkeypatch, "wrong-gqa", "-k",
                     "test_token_attention and 4-2-32 or llama-gqa or llama-mqa")
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 3 and outcomes["passed"] == 1  # with one kv head, both mappings agree (MQA)
    result.stdout.fnmatch_lines([
        "*llama gqa on wrong-gqa (cpu)*",
        "*first op to diverge from the torch reference: token_attention*",
        "*result of token_attention(q=[[]5, 4, 32[]] float32, kv_cache=[[]*, 4, 32[]] float32*max |difference|*"])


def test_ignoring_the_cached_prefix_is_named(pytester, monkeypatch):
    result = run_kit(pytester, monkeypatch, "no-cached-prefix", "-k", "test_context_attention and 4-2-32")
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 2 and outcomes["passed"] == 2  # cached, with and without ALiBi
    result.stdout.fnmatch_lines([
        "*result of context_attention(q=[[]37, 4, 32[]] float32*b_ready_cache_len=[[]3[]] int32*max |difference|*"])


def test_the_interpreter_switch_nests_and_restores(monkeypatch):
    from zooinfer.testing import interpreter
    from zooinfer.testing.interpreter import triton_interpreter

    monkeypatch.setattr(interpreter, "_wanted", lambda: True)  # as on a machine without a GPU
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with triton_interpreter():
        assert os.environ["TRITON_INTERPRET"] == "1"
        with triton_interpreter():
            assert os.environ["TRITON_INTERPRET"] == "1"
        assert os.environ["TRITON_INTERPRET"] == "1"  # the inner block's end leaves the outer one's setting
    assert "TRITON_INTERPRET" not in os.environ
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # the user's own setting is left alone, and restored
    with triton_interpreter(), triton_interpreter():
        assert os.environ["TRITON_INTERPRET"] == "0"
    assert os.environ["TRITON_INTERPRET"] == "0"
    monkeypatch.setattr(interpreter, "_wanted", lambda: False)  # a GPU: never switched on
    monkeypatch.delenv("TRITON_INTERPRET")
    with triton_interpreter():
        assert "TRITON_INTERPRET" not in os.environ
