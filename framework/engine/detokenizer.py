"""Incremental detokenization and stop strings, amortised O(1) work per token.

Text grows by decoding a short window of recent tokens twice (with and without the newest ones) and taking
the difference, as vLLM does: it leaves SentencePiece's leading-space rule and multi-token UTF-8 characters
(byte-fallback tokens, decoded as U+FFFD until complete) to the tokenizer itself. A stop string may span
tokens: text that could still be the start of one is held back (`pending`) until it cannot, so that text once
handed out is never taken back, and a stop string can only begin inside `pending`."""
from __future__ import annotations


class Detokenizer:
    def __init__(self, tokenizer, stop: list[str]):
        self.tokenizer = tokenizer
        self.stop = stop
        self.ids: list[int] = []
        self.pending = ""                # text not handed out yet
        self._taken: list[str] = []      # text handed out, in pieces
        self._prefix = self._read = 0    # window: ids[_prefix:_read] is already text; ids[_read:] is not yet
        self._longest_stop = max(map(len, stop), default=0)

    @property
    def text(self) -> str:
        return "".join(self._taken) + self.pending

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def add(self, token_id: int) -> bool:
        """Appends a token; True when the text now holds a stop string (it is cut just before it)."""
        self.ids.append(token_id)
        return self._advance(final=False)

    def flush(self) -> bool:
        """At the end: whatever is pending decodes as it is (an incomplete character as U+FFFD, like a full decode)."""
        return self._advance(final=True)

    def _advance(self, final: bool) -> bool:
        before = self._decode(self.ids[self._prefix:self._read])
        after = self._decode(self.ids[self._prefix:])
        if len(after) <= len(before) or (after.endswith("\ufffd") and not final):
            return False
        self.pending += after[len(before):]
        self._prefix, self._read = self._read, len(self.ids)
        cut = min((i for i in map(self.pending.find, self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.pending = self.pending[:cut]
            return True
        return False

    def take(self, final: bool) -> str:
        """The text no later token can take back (all of it when final), handed out once."""
        keep = 0 if final else self._held_back()
        piece = self.pending[:len(self.pending) - keep]
        self.pending = self.pending[len(piece):]
        if piece:
            self._taken.append(piece)
        return piece

    def _held_back(self) -> int:
        """Length of the longest tail of pending that begins a stop string."""
        for k in range(min(self._longest_stop - 1, len(self.pending)), 0, -1):
            tail = self.pending[-k:]
            if any(s.startswith(tail) for s in self.stop):
                return k
        return 0
