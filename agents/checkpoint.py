"""Atomic checkpoints of a training state as plain numpy ``.npz`` files.

A checkpoint is ONE file: every leaf of the state pytree as an array
``leaf_00000``, ``leaf_00001``, ... plus ``__meta__``, a JSON string with the
leaves' key paths, shapes and dtypes, a SHA-256 of their bytes and the
caller's metadata (iteration, config...). No pickle is involved.

Writes are atomic: the file is written to a temporary file in the same
directory, flushed and fsync-ed, then ``os.replace``-d over the old one (and
the directory is fsync-ed), so a crash at any moment leaves either the old
or the new checkpoint, never a partial one. Loading checks everything it
can (zip CRCs, the checksum, the tree structure, shapes and dtypes against a
template state) and raises :class:`CheckpointError` with a clear message.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any, Dict, Tuple

import jax
import numpy as np

FORMAT = "batched-mcts-checkpoint/1"


class CheckpointError(Exception):
  """A checkpoint is missing, corrupted or does not match this run."""


def _leaves(tree):
  path_leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
  paths = [jax.tree_util.keystr(p) for p, _ in path_leaves]
  arrays = [np.asarray(x) for _, x in path_leaves]
  return paths, arrays, treedef


def _digest(arrays) -> str:
  h = hashlib.sha256()
  for a in arrays:
    h.update(str(a.dtype).encode())
    h.update(str(a.shape).encode())
    h.update(np.ascontiguousarray(a).tobytes())
  return h.hexdigest()


def atomic_write_bytes(path: str, write_fn) -> None:
  """Calls ``write_fn(file)`` on a temp file next to ``path``, then fsyncs
  and atomically renames it to ``path``."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path),
                             dir=directory)
  try:
    with os.fdopen(fd, "wb") as f:
      write_fn(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    try:
      os.unlink(tmp)
    except FileNotFoundError:
      pass
    raise
  try:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
      os.fsync(dir_fd)
    finally:
      os.close(dir_fd)
  except OSError:
    pass  # Some filesystems do not support fsync on directories.


def atomic_write_text(path: str, text: str) -> None:
  atomic_write_bytes(path, lambda f: f.write(text.encode()))


def save(path: str, state: Any, metadata: Dict[str, Any]) -> None:
  """Atomically writes ``state`` (a pytree of arrays) and ``metadata``."""
  state = jax.device_get(state)
  paths, arrays, _ = _leaves(state)
  meta = dict(format=FORMAT, metadata=metadata, paths=paths,
              shapes=[list(a.shape) for a in arrays],
              dtypes=[str(a.dtype) for a in arrays], sha256=_digest(arrays))
  payload = {f"leaf_{i:05d}": a for i, a in enumerate(arrays)}
  payload["__meta__"] = np.array(json.dumps(meta))
  atomic_write_bytes(path, lambda f: np.savez(f, **payload))


def read_metadata(path: str) -> Dict[str, Any]:
  return _read(path)[0]["metadata"]


def _read(path: str) -> Tuple[Dict[str, Any], list]:
  if not os.path.exists(path):
    raise CheckpointError(f"no checkpoint at {path}")
  try:
    with np.load(path, allow_pickle=False) as z:
      meta = json.loads(str(z["__meta__"]))
      if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown format {meta.get('format')!r}")
      arrays = [z[f"leaf_{i:05d}"] for i in range(len(meta["paths"]))]
  except CheckpointError:
    raise
  except Exception as e:  # zipfile.BadZipFile, KeyError, ValueError, OSError.
    raise CheckpointError(
        f"checkpoint {path} is corrupted or unreadable "
        f"({type(e).__name__}: {e})") from e
  if _digest(arrays) != meta["sha256"]:
    raise CheckpointError(f"checkpoint {path} is corrupted (checksum "
                          "mismatch)")
  return meta, arrays


def load(path: str, template: Any) -> Tuple[Any, Dict[str, Any]]:
  """``(state, metadata)``; ``state`` has ``template``'s structure, shapes
  and dtypes (any mismatch raises CheckpointError)."""
  meta, arrays = _read(path)
  paths, t_arrays, treedef = _leaves(template)
  if paths != meta["paths"]:
    raise CheckpointError(
        f"checkpoint {path} does not match this run's state structure "
        f"({len(meta['paths'])} leaves saved, {len(paths)} expected)")
  for p, a, t in zip(paths, arrays, t_arrays):
    if a.shape != t.shape or a.dtype != t.dtype:
      raise CheckpointError(
          f"checkpoint {path}: leaf {p} is {a.dtype}{list(a.shape)}, "
          f"expected {t.dtype}{list(t.shape)}")
  state = jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(a)
                                                 for a in arrays])
  return state, meta["metadata"]
