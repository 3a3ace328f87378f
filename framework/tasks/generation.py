"""The text_generation and chat tasks: prompts or conversations in, RequestOutputs out."""
from __future__ import annotations

from zooinfer.errors import ZooinferError

from .base import Task


class TextGenerationTask(Task):
    description = "continue each prompt; keyword arguments override the config's sampling defaults"

    def __call__(self, inputs, **sampling):
        """A prompt (text or token ids) gives one RequestOutput, a list of prompts a list of them (in order)."""
        params = self.config.sampling_params(**sampling)
        single = isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int))
        items = [inputs] if single else inputs
        if isinstance(items, (list, tuple)) and items and all(isinstance(x, str) for x in items):
            outputs = self.llm.generate(list(items), params)
        elif isinstance(items, (list, tuple)) and items and all(isinstance(x, list) for x in items):
            outputs = self.llm.generate(prompt_token_ids=list(items), sampling_params=params)
        else:
            raise ZooinferError("text_generation takes a prompt (text or a list of token ids) or a list of "
                                f"prompts of one kind, got {inputs!r}")
        return outputs[0] if single else outputs


class ChatTask(Task):
    description = "answer a conversation ([{'role': ..., 'content': ...}] or one user message) via the chat template"

    def __call__(self, inputs, **sampling):
        """A conversation (or a plain user message) gives one RequestOutput, a list of conversations a list."""
        single = isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], dict))
        conversations = [inputs] if single else inputs
        if not isinstance(conversations, (list, tuple)) or not conversations:
            raise ZooinferError("chat takes a message, a conversation or a list of conversations")
        prompts = [self._prompt(c) for c in conversations]  # all checked before any runs
        outputs = self.llm.generate(prompts, self.config.sampling_params(**sampling))
        return outputs[0] if single else outputs

    def _prompt(self, conversation) -> str:
        tokenizer = self.llm.tokenizer
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ZooinferError(f"{self.llm.model_dir} has no chat template, so the chat task cannot format "
                                "conversations; use text_generation")
        if isinstance(conversation, str):
            conversation = [{"role": "user", "content": conversation}]
        for i, message in enumerate(conversation if isinstance(conversation, list) else [conversation]):
            if not (isinstance(message, dict) and isinstance(message.get("role"), str)
                    and isinstance(message.get("content"), str)):
                raise ZooinferError(f"chat message {i} must be a dict with string 'role' and 'content', "
                                    f"got {message!r}")
        return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
