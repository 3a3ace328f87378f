"""Rendering a model's chat template with a time bound, and its errors as one line.

A chat template is a jinja2 program shipped with the model: transformers renders it in jinja2's sandbox (no file
or attribute access), but nested loops can still run for hours. Rendering happens in a worker thread; when it
overruns, an exception is raised inside that thread (the interpreter delivers it at the template's next bytecode),
so the render stops instead of spinning in the background.
"""
from __future__ import annotations

import ctypes
import threading

from zooinfer.errors import ZooinferError

CHAT_TEMPLATE_TIMEOUT_S = 10.0


class _Overrun(BaseException):
    """Raised inside an overrunning render; a BaseException, so that no `except Exception` in jinja2 swallows it."""


def _stop(thread: threading.Thread) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(_Overrun))


def render_chat_template(tokenizer, messages: list[dict], where, timeout_s: float | None = None,
                         **kwargs) -> str:
    """tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs) within
    timeout_s seconds (default CHAT_TEMPLATE_TIMEOUT_S). Raises ZooinferError naming `where` (the model) for an
    overrun or any template error: a syntax error, an undefined variable, or the template's raise_exception()."""
    timeout_s = CHAT_TEMPLATE_TIMEOUT_S if timeout_s is None else timeout_s
    result: dict = {}

    def render():
        try:
            result["text"] = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                           **kwargs)
        except _Overrun:
            pass
        except Exception as exc:  # jinja2.TemplateError and whatever a filter raises on the template's data
            result["error"] = exc

    worker = threading.Thread(target=render, name="chat-template", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        _stop(worker)
        worker.join(1.0)
        raise ZooinferError(f"the chat template of {where} did not finish within {timeout_s:g} s (a runaway loop?); "
                            "pass the prompt without the template (zooinfer generate --raw)")
    if "error" in result:
        exc = result["error"]
        text = " ".join(str(exc).split()) or type(exc).__name__
        line = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
        raise ZooinferError(f"the chat template of {where} failed{line}: {text}")
    if not isinstance(result.get("text"), str):
        raise ZooinferError(f"the chat template of {where} did not render to text")
    return result["text"]
