"""Prefix cache: a radix tree over token ids whose nodes own the pool slots of those tokens (SGLang style).

A request holds a reference on the deepest node of its prefix, which pins every node above it; nodes that no
request references are evicted least recently used first when the pool needs room."""
from __future__ import annotations

import heapq
import itertools

import torch

from zooinfer.kv_cache import KVCache


class Node:
    __slots__ = ("key", "slots", "parent", "children", "refs", "last_used")

    def __init__(self, key: list[int], slots: torch.Tensor, parent: Node | None):
        self.key, self.slots, self.parent = key, slots, parent
        self.children: dict[int, Node] = {}
        self.refs = 0
        self.last_used = 0


def _common_len(a: list[int], b: list[int], start: int = 0) -> int:
    n = min(len(a), len(b) + start) - start
    i = 0
    while i < n and a[start + i] == b[i]:
        i += 1
    return i


class PrefixCache:
    def __init__(self, kv_cache: KVCache):
        self.kv_cache = kv_cache
        self.root = Node([], torch.empty(0, dtype=torch.int32), None)
        self.root.refs = 1  # never evicted
        self.cached = 0      # slots the tree owns
        self.evictable = 0   # of those, slots no request references
        self._clock = itertools.count(1)

    def match(self, ids: list[int]) -> tuple[list[int], Node]:
        """The slots of the longest cached prefix of ids, and its deepest node (split to end exactly there)."""
        node, pos, parts = self._descend(ids, next(self._clock))
        return (torch.cat(parts).tolist() if parts else []), node

    def _descend(self, ids: list[int], now: int) -> tuple[Node, int, list[torch.Tensor]]:
        """Down the tree along ids as far as it holds them, splitting the last node to end exactly there and
        marking each node used at `now`: (deepest node, tokens matched, the matched nodes' slots)."""
        node, pos, parts = self.root, 0, []
        while pos < len(ids) and ids[pos] in node.children:
            child = node.children[ids[pos]]
            n = _common_len(ids, child.key, pos)
            if n < len(child.key):
                child = self._split(child, n)
            child.last_used = now
            parts.append(child.slots)
            node, pos = child, pos + n
        return node, pos, parts

    def insert(self, ids: list[int], slots: list[int]) -> int:
        """Caches ids -> slots; returns how many leading tokens were cached already (the caller still owns
        those slots of its own: they duplicate the tree's). The tree takes ownership of the rest."""
        now = next(self._clock)
        node, pos, _ = self._descend(ids, now)
        if pos < len(ids):
            leaf = Node(ids[pos:], torch.tensor(slots[pos:], dtype=torch.int32), node)
            leaf.last_used = now
            node.children[ids[pos]] = leaf
            self.cached += len(leaf.key)
            self.evictable += len(leaf.key)
        return pos

    def _split(self, node: Node, n: int) -> Node:
        """Cuts node's edge after n tokens; returns the new upper part."""
        upper = Node(node.key[:n], node.slots[:n], node.parent)
        upper.refs, upper.last_used = node.refs, node.last_used
        upper.children[node.key[n]] = node
        node.parent.children[node.key[0]] = upper
        node.key, node.slots, node.parent = node.key[n:], node.slots[n:], upper
        return upper

    def lock(self, node: Node) -> None:
        while node is not self.root:
            if node.refs == 0:
                self.evictable -= len(node.key)
            node.refs += 1
            node = node.parent

    def unlock(self, node: Node) -> None:
        while node is not self.root:
            node.refs -= 1
            if node.refs == 0:
                self.evictable += len(node.key)
            node = node.parent

    def evict(self, n: int) -> None:
        """Frees at least n slots (or all it can) from unreferenced leaves, least recently used first."""
        heap = [(x.last_used, id(x), x) for x in self._nodes() if not x.children and x.refs == 0]
        heapq.heapify(heap)
        freed = 0
        while heap and freed < n:
            _, _, leaf = heapq.heappop(heap)
            parent = leaf.parent
            del parent.children[leaf.key[0]]
            self.kv_cache.free_slots(leaf.slots)
            freed += len(leaf.key)
            self.cached -= len(leaf.key)
            self.evictable -= len(leaf.key)
            if parent is not self.root and not parent.children and parent.refs == 0:
                heapq.heappush(heap, (parent.last_used, id(parent), parent))

    def _nodes(self):
        stack = [self.root]
        while stack:
            node = stack.pop()
            stack.extend(node.children.values())
            if node is not self.root:
                yield node
