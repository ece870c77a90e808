"""Tests of agents/runs/lock.py: one live run per run directory."""
import os
import signal
import subprocess
import sys

import pytest

from agents import train as train_lib
from agents.runs import lock as run_lock
from agents.runs import run_dir
from tests.agents.helpers import ROOT, files, tiny


def test_second_trainer_is_refused_and_a_killed_run_frees_the_lock(
    tmp_path, capsys):
  out = tmp_path / "run"
  run_dir.prepare_new_run(str(out), tiny())
  before = files(str(out))
  with run_lock.RunLock(str(out)):  # A live run.
    code = train_lib.main(["--resume", str(out), "--steps", "9"])
    err = capsys.readouterr().err
    assert code == 2 and "in use by a live training run" in err
    assert f"pid {os.getpid()}" in err
    with pytest.raises(run_lock.RunLockedError):
      run_lock.RunLock(str(out))
  assert {k: v for k, v in files(str(out)).items()
          if k != run_lock.LOCK_FILE} == before
  # A run killed with SIGKILL while holding the lock leaves it free.
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; "
       "from agents.runs import lock as run_lock;"
       f" l = run_lock.RunLock({str(out)!r}); print('held', flush=True); "
       "time.sleep(60)"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == "held"
  with pytest.raises(run_lock.RunLockedError, match=f"pid {holder.pid}"):
    run_lock.RunLock(str(out))
  holder.send_signal(signal.SIGKILL)
  holder.wait()
  run_lock.RunLock(str(out)).release()
