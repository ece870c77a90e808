"""A run stopped by SIGTERM (preemption) or Ctrl-C: it saves a checkpoint at
the end of the iteration, runs no final evaluation, says how to resume and
exits 128 + the signal; resumed, it ends with the parameters of a run never
stopped. In process (the loop) by default; a real `python -m agents.train`
in a subprocess is marked slow (three runs of the command)."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import pytest

pytest.importorskip("orbax.checkpoint")

import envs  # pylint: disable=g-import-not-at-top
from agents import algorithms
from agents.runs import checkpoints
from agents.runs import run_dir
from agents.runs.signals import RunStopped
from agents.training import loop
from agents.training import parallel
from agents.training import state as state_lib
from tests.agents.helpers import ROOT, params_equal, tiny


def _restore(agent, out):
  """The state and metadata of the latest checkpoint of run ``out``."""
  mesh = parallel.make_mesh(1)
  target = checkpoints.abstract_target(
      jax.eval_shape(lambda: state_lib.sharded_init_state(agent, mesh)),
      state_lib.state_shardings(agent, mesh))
  return checkpoints.restore(os.path.join(out, run_dir.CHECKPOINT_DIR),
                             target)


def test_sigterm_saves_skips_the_final_evaluation_and_resume_is_exact(
    tmp_path):
  config = tiny("tictactoe", steps=4, eval_every=1)
  agent = algorithms.make_agent(config, envs.make(config.env))
  mesh = parallel.make_mesh(1)
  lines = []

  def run(name, **kw):
    out = str(tmp_path / name)
    if not kw.get("resume"):
      run_dir.prepare_new_run(out, config)
    return loop.train(agent, out, mesh, progress=False, plot=False,
                      log=lines.append, **kw)

  def final(params):
    del params
    lines.append("final evaluation")
    return {}

  full = run("straight", final_evaluate=final)
  # What is compiled, when, and how long it took; then the iterations, then
  # the final evaluation (in the order they happen).
  assert lines[0] == ("Compiling the training iteration (self-play: 8 games "
                      "x 8 moves, 4 simulations per move; 8 updates of "
                      "16)...")
  assert lines[1].startswith("Compiled the training iteration in ")
  assert lines[1].endswith(" s")
  assert lines[2].startswith("Trained 4 iterations in ")
  assert lines[3:] == ["final evaluation"]

  def sigterm_at_2(params, iteration):
    del params
    if iteration == 2:
      os.kill(os.getpid(), signal.SIGTERM)
    return {}

  def no_final(params):
    raise AssertionError("a final evaluation after SIGTERM")

  with pytest.raises(RunStopped) as stopped:
    run("stopped", quick_evaluate=sigterm_at_2, final_evaluate=no_final)
  assert (stopped.value.iteration, stopped.value.exit_code) == (2, 143)
  assert not stopped.value.training_done
  out = tmp_path / "stopped"
  assert sorted(os.listdir(out)) == sorted([
      run_dir.RUN_FILE, run_dir.CHECKPOINT_DIR, run_dir.METRICS_FILE])
  _, meta = _restore(agent, str(out))  # Intact (digest checked).
  assert meta["iteration"] == 2
  rows = [json.loads(l) for l in open(out / run_dir.METRICS_FILE)]
  assert [r["iteration"] for r in rows] == [1, 2]
  resumed = run("stopped", resume=True)
  assert resumed["iteration"] == 4
  assert params_equal(resumed["state"], full["state"])

  # Ctrl-C during the compilation: stopped before the first iteration.
  def ctrl_c_while_compiling(line):
    if line.startswith("Compiling"):
      os.kill(os.getpid(), signal.SIGINT)

  early = str(tmp_path / "early")
  run_dir.prepare_new_run(early, config)
  with pytest.raises(RunStopped) as stopped:
    loop.train(agent, early, mesh, progress=False, plot=False,
               log=ctrl_c_while_compiling, final_evaluate=no_final)
  assert (stopped.value.iteration, stopped.value.exit_code) == (0, 130)
  assert _restore(agent, early)[1]["iteration"] == 0
  assert not open(os.path.join(early, run_dir.METRICS_FILE)).read()


# ----------------------------------------------------- the command line
# A tiny run of the real command (catch: small networks, quick to compile).
FLAGS = ["--env", "catch", "--simulations", "2", "--envs", "8",
         "--batch-size", "16", "--updates-per-iter", "2",
         "--replay-capacity", "32", "--td-steps", "2", "--unroll-steps", "1",
         "--steps", "300", "--eval-every", "100000", "--final-eval-games",
         "1", "--eval-mcts-sims", "0", "--no-progress"]


def _command(args, cache):
  """``python -m agents.train ARGS`` in a subprocess, compiling through
  the persistent cache ``cache`` (so that the three runs compile once)."""
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             JAX_COMPILATION_CACHE_DIR=str(cache),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  return subprocess.Popen(
      [sys.executable, "-m", "agents.train"] + args, cwd=ROOT, env=env,
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=600):
  out, _ = proc.communicate(timeout=timeout)
  assert proc.returncode == 0, out[-4000:]
  return out


@pytest.mark.slow
def test_sigterm_to_the_command_then_resume_as_printed(tmp_path):
  cache, out = tmp_path / "cache", tmp_path / "stopped"
  proc = _command(FLAGS + ["--out", str(out)], cache)
  metrics = out / run_dir.METRICS_FILE
  deadline = time.time() + 500
  while not (metrics.exists() and metrics.read_text().strip()):
    assert time.time() < deadline and proc.poll() is None, (
        proc.communicate()[0][-3000:])
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  sent = time.time()
  text, _ = proc.communicate(timeout=120)
  waited = time.time() - sent
  print(f"exited {proc.returncode} {waited:.1f} s after SIGTERM")
  assert proc.returncode == 143, text[-3000:]
  assert waited < 30, waited
  stopped_at = checkpoints.latest_step(str(out / run_dir.CHECKPOINT_DIR))
  assert 1 <= stopped_at < 300
  want = (f"Stopped by SIGTERM at iteration {stopped_at} of 300: checkpoint "
          f"saved in {out / run_dir.CHECKPOINT_DIR}; no final evaluation\n"
          f"Resume with: python -m agents.train --resume {out} "
          "--eval-mcts-sims 0 --no-progress\n")
  assert text.endswith(want), text[-3000:]
  assert "SIGTERM received: stopping after this iteration" in text
  assert not (out / run_dir.EVAL_FILE).exists()
  assert "Final evaluation" not in text and "Trained" not in text
  config = run_dir.load_run_config(str(out))
  agent = algorithms.make_agent(config, envs.make(config.env))
  _, meta = _restore(agent, str(out))  # Intact (digest checked).
  assert meta["iteration"] == stopped_at
  # Resumed with the printed command, it ends where a run never stopped
  # does.
  resume = want.splitlines()[-1].split(": ", 1)[1].split()[3:]
  text = _finish(_command(resume, cache))
  _finish(_command(FLAGS + ["--out", str(tmp_path / "straight")], cache))
  assert params_equal(_restore(agent, str(out))[0],
                      _restore(agent, str(tmp_path / "straight"))[0])
  assert json.load(open(out / run_dir.EVAL_FILE))["iteration"] == 300
  # The resumed run says what it does, in the order it happens.
  order = ["Resuming", "Compiling the training iteration",
           "Compiled the training iteration in", "Trained 300 iterations",
           "Compiling the final evaluation", "Compiled the final evaluation",
           "Final evaluation: 1 games, and as many by a random player...",
           "Played the final evaluation in", "catch_rate", "Metrics:"]
  at = [text.find(line) for line in order]
  assert -1 not in at and at == sorted(at), (at, text[-3000:])
