"""A run directory: what it holds, and reading and writing what says what
the run is.

A run directory holds ``run.json`` (what the run is: its config),
``checkpoints/<iteration>/`` (the two latest orbax checkpoints, each
process writing its own shards, see :mod:`agents.runs.checkpoints`),
``metrics.jsonl`` (one JSON line per iteration, :mod:`agents.runs.metrics`),
``eval.json`` (the final evaluation), ``learning_curve.png``
(:mod:`agents.runs.plot`) and ``.lock`` (held by a live run,
:mod:`agents.runs.lock`). Every file but the checkpoints is written
atomically (a temporary file renamed over the old one), so that a crash
leaves the old file or the new one, never a partial one.
"""
from __future__ import annotations

import datetime
import json
import os
import tempfile
from typing import Any, Dict, Optional

from agents import config as config_lib

PROGRAM = "batched-mcts agents.train"
RUN_FILE = "run.json"
CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.json"
PLOT_FILE = "learning_curve.png"


class RunError(Exception):
  """A user error (bad arguments, a directory we must not touch...)."""


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
  """Writes ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
  atomic_write_bytes(path, lambda f: f.write(text.encode()))


def read_run_file(out_dir: str) -> Optional[Dict[str, Any]]:
  """The contents of ``out_dir``'s run.json; None if it has none or it is
  not ours (raises :class:`RunError` for an unreadable one)."""
  path = os.path.join(out_dir, RUN_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      info = json.load(f)
  except (OSError, ValueError) as e:
    raise RunError(f"{path} is unreadable ({e}); not touching {out_dir}")
  if not isinstance(info, dict) or info.get("program") != PROGRAM:
    return None
  return info


def prepare_new_run(out_dir: str, config: config_lib.Config) -> None:
  """Creates ``out_dir`` for a new run; refuses a directory holding
  anything (another run of ours, or foreign files)."""
  if os.path.exists(out_dir):
    if not os.path.isdir(out_dir):
      raise RunError(f"--out {out_dir} exists and is not a directory; "
                     "refusing to overwrite it")
    entries = sorted(os.listdir(out_dir))
    if entries:
      if read_run_file(out_dir) is not None:
        raise RunError(
            f"--out {out_dir} already holds a training run; continue it "
            f"with --resume {out_dir}, or choose another --out")
      shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
      raise RunError(
          f"--out {out_dir} is not empty and is not one of our runs "
          f"(it holds: {shown}); refusing to overwrite it: choose a new or "
          "empty directory")
  os.makedirs(out_dir, exist_ok=True)
  write_run_file(out_dir, config)


def write_run_file(out_dir: str, config: config_lib.Config) -> None:
  """Writes (atomically) ``out_dir``'s run.json: this program, ``config``
  and the time."""
  info = dict(program=PROGRAM, config=config.to_dict(),
              created=datetime.datetime.now().isoformat(timespec="seconds"))
  atomic_write_text(os.path.join(out_dir, RUN_FILE),
                         json.dumps(info, indent=2) + "\n")


def load_run_config(out_dir: str, what: str = "--resume") -> config_lib.Config:
  """The config of the run in ``out_dir``; errors name it as ``what``."""
  if not os.path.isdir(out_dir):
    raise RunError(f"{what} {out_dir}: no such directory")
  info = read_run_file(out_dir)
  if info is None:
    raise RunError(f"{what} {out_dir}: not a training run of ours (no "
                   f"valid {RUN_FILE})")
  try:
    return config_lib.validate(config_lib.Config.from_dict(info["config"]))
  except (KeyError, TypeError, ValueError) as e:
    raise RunError(f"{os.path.join(out_dir, RUN_FILE)} has a bad config: {e}")
