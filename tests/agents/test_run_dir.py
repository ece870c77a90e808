"""Tests of agents/runs/run_dir.py: atomic writes of a run's files."""
import os

import pytest

from agents.runs import run_dir


def test_atomic_write_keeps_the_old_file_on_a_crash(tmp_path):
  """A crash in the middle of writing leaves the old file intact and no
  temporary file behind (what the npz checkpoint test checked of its
  writes, now of the writes that remain: run.json, metrics, eval.json)."""
  path = str(tmp_path / "run.json")
  run_dir.atomic_write_text(path, "old")
  def boom(f):
    f.write(b"partial garbage")
    raise OSError("disk full")
  with pytest.raises(OSError, match="disk full"):
    run_dir.atomic_write_bytes(path, boom)
  assert open(path).read() == "old"
  assert sorted(os.listdir(tmp_path)) == ["run.json"]
  run_dir.atomic_write_text(path, "new")
  assert open(path).read() == "new"
