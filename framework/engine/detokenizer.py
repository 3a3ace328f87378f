"""Incremental detokenization and stop strings, amortised O(1) work per token.

Text grows by decoding a short window of recent tokens twice (with and without the newest ones) and taking
the difference, as vLLM does: it leaves SentencePiece's leading-space rule and multi-token UTF-8 characters
(byte-fallback tokens, decoded as U+FFFD until complete) to the tokenizer itself. A stop string may span
tokens; until it can no longer begin at the end of the text, that tail is held back from streams."""
from __future__ import annotations


class Detokenizer:
    def __init__(self, tokenizer, stop: list[str]):
        self.tokenizer = tokenizer
        self.stop = stop
        self.ids: list[int] = []
        self.text = ""
        self._prefix = self._read = 0  # window: ids[_prefix:_read] is already text; ids[_read:] is pending
        self._longest_stop = max(map(len, stop), default=0)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def add(self, token_id: int) -> bool:
        """Appends a token; True when the text now contains a stop string (it is cut there)."""
        self.ids.append(token_id)
        before = self._decode(self.ids[self._prefix:self._read])
        after = self._decode(self.ids[self._prefix:])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            return self._extend(after[len(before):])
        return False

    def flush(self) -> bool:
        """At the end: whatever is pending (an incomplete character shows as U+FFFD, as a full decode does)."""
        before = self._decode(self.ids[self._prefix:self._read])
        after = self._decode(self.ids[self._prefix:])
        return len(after) > len(before) and self._extend(after[len(before):])

    def _extend(self, piece: str) -> bool:
        start = max(len(self.text) - self._longest_stop + 1, 0)  # a new match must end in the new piece
        self.text += piece
        self._prefix, self._read = self._read, len(self.ids)
        cut = min((i for i in (self.text.find(s, start) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.text = self.text[:cut]
            return True
        return False

    def safe_len(self) -> int:
        """Length of the text that no later token can take back: all of it but a tail that may begin a stop string."""
        text = self.text
        for k in range(min(self._longest_stop - 1, len(text)), 0, -1):
            tail = text[-k:]
            if any(s.startswith(tail) for s in self.stop):
                return len(text) - k
        return len(text)
