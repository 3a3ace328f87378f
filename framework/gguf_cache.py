"""The cache of GGUF files converted to Hugging Face folders.

An entry is keyed by the GGUF's full content digest, the dtype it was converted to and the quantization whose
blocks it keeps (if any), so two different files
never share an entry and a reinstalled copy of the same file reuses it. Hashing a large file takes seconds, so
each path's digest is remembered in a small index (index.json) under its size, mtime, ctime and inode: a warm
start only stats the file (and an edit in place that restores the mtime still changes the ctime). An entry is
complete when it holds a marker listing its files and their sizes; it is built in a locked temporary folder and
renamed into place. Each conversion also sweeps away what the cache no longer
needs: temporary folders of killed conversions and entries superseded by a changed source file.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from zooinfer.errors import ZooinferError

# Bump when the converter's output changes, so entries written by an older converter are redone.
CONVERTER_VERSION = 2
MARKER = ".zooinfer-entry.json"
_INDEX = "index.json"
_LOCK = ".lock"
STALE_AFTER_S = 15 * 60  # a temporary folder this old whose lock nobody holds is a killed conversion's
_LEGACY_ENTRY = re.compile(r".+-[0-9a-f]{16}$")  # converter version 1: name + size + mtime, no marker


def content_digest(cache: Path, gguf: Path) -> str:
    """The sha256 of the file, hashed once per (path, size, mtime, ctime, inode) and remembered in the index."""
    st, path = gguf.stat(), str(gguf.resolve())
    stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    index = _read_index(cache)
    if (known := index.get(path)) and known.get("stamp") == stamp:
        return known["sha256"]
    sha = hashlib.sha256()
    with open(gguf, "rb") as f:
        while chunk := f.read(1 << 22):
            sha.update(chunk)
    index = {p: v for p, v in _read_index(cache).items() if os.path.exists(p)}  # re-read: others may have added
    index[path] = {"stamp": stamp, "sha256": sha.hexdigest()}
    _write_atomically(cache / _INDEX, json.dumps(index, indent=1), _file_mode(cache))
    return sha.hexdigest()


def _read_index(cache: Path) -> dict:
    try:
        index = json.loads((cache / _INDEX).read_text())
    except (OSError, ValueError):
        return {}  # missing or damaged: it only saves hashing, so start afresh
    return index if isinstance(index, dict) else {}


def _write_atomically(path: Path, text: str, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _file_mode(cache: Path) -> int:
    """Files are as readable as the cache folder: group-readable in a shared 0755 cache, private in a 0700 one."""
    return cache.stat().st_mode & 0o666


def entry_problem(entry: Path) -> str | None:
    """Why an existing entry cannot be served (no marker, a file missing or of the wrong size), or None."""
    try:
        files = json.loads((entry / MARKER).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"no readable {MARKER} (an interrupted or foreign write)"
    for name, size in files.items():
        try:
            actual = (entry / name).stat().st_size
        except OSError:
            return f"{name} is missing"
        if actual != size:
            return f"{name} has {actual} bytes, expected {size}"
    return None


def converted(gguf: Path, dtype, cache: Path, quantization=None) -> Path:
    """The cache entry for `gguf` converted to the torch dtype `dtype` (and, with a quantization, its quantized
    blocks kept as they are: see convert_gguf), converting (or repairing) it first when needed."""
    cache.mkdir(parents=True, exist_ok=True)
    digest = content_digest(cache, gguf)
    dtype_name = str(dtype).removeprefix("torch.")
    quantized = f"-{quantization.name}" if quantization is not None else ""
    out = cache / f"{gguf.stem}-{digest[:16]}-{dtype_name}{quantized}-v{CONVERTER_VERSION}"
    if out.exists():
        problem = entry_problem(out)
        if problem is None:
            return out
        _discard(out, f"cache entry {out} is damaged ({problem})")
    _sweep(cache, gguf, digest, out)
    from zooinfer.gguf_convert import convert_gguf  # heavy imports only when converting

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=cache))
    try:
        with open(tmp / _LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # tells a sweeping process that this folder is alive
            convert_gguf(gguf, tmp, dtype, quantization)
            files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file() and p.name != _LOCK}
            marker = {"source": str(gguf.resolve()), "sha256": digest, "dtype": dtype_name,
                      "quantization": quantization.name if quantization is not None else None,
                      "converter": CONVERTER_VERSION, "files": files}
            (tmp / MARKER).write_text(json.dumps(marker, indent=1))
            for name in [*files, MARKER]:
                os.chmod(tmp / name, _file_mode(cache))
            os.chmod(tmp, cache.stat().st_mode & 0o777)  # mkdtemp makes it owner-only
            (tmp / _LOCK).unlink()
            try:
                os.rename(tmp, out)  # atomic on one filesystem
            except OSError:  # ENOTEMPTY/EEXIST: another process finished the same conversion first
                if entry_problem(out) is not None:
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _discard(entry: Path, why: str) -> None:
    """Removes a damaged entry so that it can be converted again; an error saying what to delete if it cannot."""
    aside = entry.with_name(f".{entry.name}.tmp-damaged-{os.getpid()}")
    try:
        os.rename(entry, aside)  # first out of the way, atomically, then removed at leisure
        shutil.rmtree(aside)
    except OSError as exc:
        raise ZooinferError(f"{why} and cannot be removed ({exc.strerror}); delete it and retry") from None


def _sweep(cache: Path, gguf: Path, digest: str, keep: Path) -> None:
    """Removes temporary folders of killed conversions, entries of an older content of this same source path
    (an updated or reinstalled file), and version-1 entries (keyed by size and mtime, never reused)."""
    source = str(gguf.resolve())
    for path in cache.iterdir():
        if path == keep or not path.is_dir():
            continue
        if ".tmp-" in path.name:
            if _abandoned(path):
                shutil.rmtree(path, ignore_errors=True)
        elif (path / MARKER).is_file():
            try:
                marker = json.loads((path / MARKER).read_text())
            except (OSError, ValueError):
                continue
            if marker.get("source") == source and marker.get("sha256") != digest:
                shutil.rmtree(path, ignore_errors=True)
        elif _LEGACY_ENTRY.match(path.name) and (path / "config.json").is_file():
            shutil.rmtree(path, ignore_errors=True)


def _abandoned(tmp: Path) -> bool:
    """A temporary folder older than STALE_AFTER_S whose lock no live process holds."""
    try:
        if time.time() - tmp.stat().st_mtime < STALE_AFTER_S:
            return False
        with open(tmp / _LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released on close
    except BlockingIOError:
        return False
    except OSError:
        return True  # no lock file: the conversion got past it or never took one
    return True
