"""Data-parallel training (agents/training/parallel.py,
agents/runs/processes.py) and the poison guard.

Runs on several devices use forced CPU devices (XLA_FLAGS=
--xla_force_host_platform_device_count=N) in a subprocess
(tests/agents/dist_worker.py), since the flag must be set before JAX starts;
several processes talk through jax.distributed on 127.0.0.1 (gloo).
"""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("orbax.checkpoint")

import envs  # pylint: disable=g-import-not-at-top
from agents import algorithms
from agents import train as train_lib
from agents.runs import checkpoints
from agents.runs import run_dir
from agents.training import loop
from agents.training import parallel
from agents.training import state as state_lib
from agents.training import step as step_lib
from tests.agents.helpers import ROOT, files, tiny_config


def _env(devices):
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform"
                      f"_device_count={devices}").strip()
  env["JAX_PLATFORMS"] = "cpu"
  for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    env.pop(k, None)
  return env


def _worker(args, devices, **kw):
  return subprocess.Popen(
      [sys.executable, "-m", "tests.agents.dist_worker"] + args, cwd=ROOT,
      env=_env(devices), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      text=True, **kw)


def _finish(proc, timeout=600):
  out, _ = proc.communicate(timeout=timeout)
  assert proc.returncode == 0, out[-4000:]
  return out


def _load(path):
  with np.load(path) as z:
    return [z[k] for k in sorted(z.files, key=lambda k: int(k.split("_")[1]))]


def _assert_close(a, b, tol):
  assert len(a) == len(b)
  worst = max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))
  assert worst <= tol, worst


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _tiny(**kw):
  return tiny_config(kw)


# ------------------------------------------------------- sizes and devices
def test_sizes_must_divide_over_shards_and_devices(tmp_path, capsys):
  with pytest.raises(ValueError, match=r"--envs 8 must be divisible by the "
                     r"number of shards \(3"):
    _tiny(num_shards=3)
  with pytest.raises(ValueError, match=r"--batch-size 12 must be divisible"):
    _tiny(num_shards=8, batch_size=12)
  with pytest.raises(parallel.ParallelError, match="4 shards.*3 devices"):
    parallel.check_devices(_tiny(num_shards=4), 3)
  n = len(jax.devices())
  code = train_lib.main(["--devices", str(n + 1), "--out",
                         str(tmp_path / "r")])
  assert code == 2
  assert f"--devices must be in 1..{n}" in capsys.readouterr().err
  code = train_lib.main(["--envs", "6", "--shards", "4", "--out",
                         str(tmp_path / "r")])
  assert code == 2 and "--envs 6 must be divisible" in (
      capsys.readouterr().err)
  assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_shards_on_one_device_match_the_unsharded_step():
  """One shard on a mesh of one device is the plain program; S shards give
  other (still finite, learning) results."""
  config = _tiny(steps=2)
  agent = algorithms.make_agent(config, envs.make(config.env))
  mesh = parallel.make_mesh(1)
  a = state_lib.sharded_init_state(agent, mesh)
  b = a
  for _ in range(2):
    a, _ = step_lib.jitted_train_step(agent, mesh)(a)
    b, _ = step_lib.jitted_train_step(agent)(b)
  assert all(np.array_equal(x, y) for x, y in zip(
      jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


@pytest.mark.slow
def test_eight_devices_equal_one_and_hlo_collectives(tmp_path):
  """8 devices in one process give the parameters of 1 device (same global
  sizes, seed and shards); the compiled step's only collectives are the
  gradient (and metric) all-reduces, none in self-play."""
  config = dict(num_envs=16, batch_size=16, num_shards=8, steps=3)
  params, hlo = str(tmp_path / "p"), str(tmp_path / "hlo.json")
  _finish(_worker(["compare", "--config", json.dumps(config), "--devices",
                   "1", "8", "--params", params, "--hlo", hlo], 8))
  _assert_close(_load(params + ".1.npz"), _load(params + ".8.npz"), 1e-4)
  info = json.load(open(hlo))
  ops = info["collectives"]
  assert info["selfplay_ops"] > 0  # The scope names are in the HLO.
  assert {op for op, _ in ops} == {"all-reduce"}, ops
  assert any("gradient_mean" in name for _, name in ops), ops
  for _, name in ops:
    assert "/selfplay/" not in name, name
    assert "gradient_mean" in name or "selfplay_stats" in name, name


@pytest.mark.slow
@pytest.mark.parametrize("config", [
    # The conv torso (convolutions with a hand-written gradient) and the
    # reconstruction's masked mean, per shard. One iteration: on Connect
    # Four the next iteration's self-play turns float rounding into other
    # games (MLP, 2 iterations: 0.007 apart).
    dict(env="connect4", algo="muzero", torso="conv", channels=4,
         reconstruction_weight=10.0, steps=1),
    # The code-usage term's mean code (a statistic of the batch).
    dict(env="2048", algo="stochastic_muzero", policy="muzero",
         code_usage_weight=0.5, value_max=8000.0, steps=2)],
                         ids=["conv", "chance"])
def test_batch_statistics_on_two_devices_equal_one(tmp_path, config):
  """Losses with batch statistics and masked means, taken per shard: 2
  devices give the parameters of 1. (The consistency heads' batch
  normalisation: tests/agents/test_consistency.py, on one batch: over an
  iteration's 8 Adam steps its float rounding grew to 0.004 apart.)"""
  config = dict(config, num_envs=8, batch_size=16, num_shards=2)
  params = str(tmp_path / "p")
  _finish(_worker(["compare", "--config", json.dumps(config), "--devices",
                   "1", "2", "--params", params], 2))
  _assert_close(_load(params + ".1.npz"), _load(params + ".2.npz"), 1e-4)


# ----------------------------------------------------- several processes
def _two_processes(tmp_path, config, timeout=60, extra=(), name="run"):
  port = _free_port()
  procs = []
  for i in range(2):
    procs.append(_worker(
        ["train", "--config", json.dumps(config), "--out",
         str(tmp_path / name), "--params", str(tmp_path / f"{name}-p"),
         "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
         "--process-id", str(i), "--timeout", str(timeout)] + list(extra),
        2))
  return procs


@pytest.mark.slow
def test_two_processes_equal_one_process_with_four_devices(tmp_path):
  config = dict(num_envs=8, batch_size=16, num_shards=4, steps=3)
  procs = _two_processes(tmp_path, config)
  for p in procs:
    _finish(p)
  p0, p1 = _load(tmp_path / "run-p.0.npz"), _load(tmp_path / "run-p.1.npz")
  _assert_close(p0, p1, 0.0)  # Identical in both processes.
  _finish(_worker(["train", "--config", json.dumps(config), "--out",
                   str(tmp_path / "one"), "--params", str(tmp_path / "q")],
                  4))
  _assert_close(p0, _load(tmp_path / "q.npz"), 1e-5)
  # Process 0 alone wrote the metrics.
  rows = open(tmp_path / "run" / run_dir.METRICS_FILE).read().splitlines()
  assert [json.loads(r)["iteration"] for r in rows] == [1, 2, 3]


@pytest.mark.slow
def test_a_dead_peer_stops_the_other_within_the_timeout(tmp_path):
  timeout = 20
  config = dict(num_envs=8, batch_size=16, num_shards=4, steps=100000)
  procs = _two_processes(tmp_path, config, timeout=timeout)
  # Wait until both train (metrics appear), then kill process 1.
  metrics = tmp_path / "run" / run_dir.METRICS_FILE
  deadline = time.time() + 400
  while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
    assert time.time() < deadline and procs[0].poll() is None
    time.sleep(0.5)
  procs[1].send_signal(signal.SIGKILL)
  killed = time.time()
  try:
    out, _ = procs[0].communicate(timeout=3 * timeout)
  except subprocess.TimeoutExpired:
    procs[0].kill()
    pytest.fail(f"process 0 still runs {3 * timeout} s after its peer died")
  waited = time.time() - killed
  assert procs[0].returncode != 0, out[-3000:]
  assert waited < 3 * timeout
  assert "another task died" in out, out[-3000:]
  print(f"process 0 exited {procs[0].returncode} after {waited:.1f} s")


@pytest.mark.slow
def test_a_peer_killed_during_a_checkpoint_then_both_resume(tmp_path):
  """Two processes checkpoint after every iteration; process 1 is killed
  while the checkpoints are being written. Process 0 stops with an error;
  both resumed, they end with the parameters of a run never killed."""
  config = dict(num_envs=8, batch_size=16, num_shards=4, steps=8)
  every = ["--checkpoint-every", "0"]
  for p in _two_processes(tmp_path, config, extra=every, name="straight"):
    _finish(p)
  want = _load(tmp_path / "straight-p.0.npz")
  procs = _two_processes(tmp_path, config, timeout=20, extra=every)
  ck_dir = tmp_path / "run" / run_dir.CHECKPOINT_DIR
  deadline = time.time() + 400
  while not (ck_dir.exists() and any(ck_dir.iterdir())):
    assert time.time() < deadline and procs[0].poll() is None
    time.sleep(0.05)
  time.sleep(random.Random(1).uniform(0.0, 1.0))
  procs[1].send_signal(signal.SIGKILL)
  out, _ = procs[0].communicate(timeout=60)
  procs[1].wait()
  assert procs[0].returncode != 0, "finished before the kill: " + out[-2000:]
  print(f"killed with checkpoints {sorted(os.listdir(ck_dir))}")
  for p in _two_processes(tmp_path, config, extra=every + ["--resume"]):
    _finish(p)
  for i in range(2):
    _assert_close(want, _load(tmp_path / f"run-p.{i}.npz"), 0.0)


@pytest.mark.slow
def test_sigterm_to_one_process_stops_both_at_the_same_iteration(tmp_path):
  """SIGTERM reaches process 1 only (a signal may reach one process, or
  each at another time): both stop at the same iteration, save it and exit
  143; both resumed, they end with the parameters of a run never
  stopped."""
  config = dict(num_envs=8, batch_size=16, num_shards=4, steps=40)
  for p in _two_processes(tmp_path, config, name="straight"):
    _finish(p)
  want = _load(tmp_path / "straight-p.0.npz")
  procs = _two_processes(tmp_path, config)
  metrics = tmp_path / "run" / run_dir.METRICS_FILE
  deadline = time.time() + 400
  while not (metrics.exists() and metrics.read_text().strip()):
    assert time.time() < deadline and procs[0].poll() is None
    time.sleep(0.05)
  procs[1].send_signal(signal.SIGTERM)
  outs = [p.communicate(timeout=120)[0] for p in procs]
  assert [p.returncode for p in procs] == [143, 143], outs[0][-3000:]
  stopped = [int(o.split("stopped ")[1].split()[0]) for o in outs]
  ck_dir = str(tmp_path / "run" / run_dir.CHECKPOINT_DIR)
  assert stopped[0] == stopped[1] == checkpoints.latest_step(ck_dir)
  assert stopped[0] < config["steps"]
  assert "SIGTERM received" in outs[1] and "SIGTERM" not in outs[0]
  print(f"both stopped at iteration {stopped[0]}")
  for p in _two_processes(tmp_path, config, extra=["--resume"]):
    _finish(p)
  for i in range(2):
    _assert_close(want, _load(tmp_path / f"run-p.{i}.npz"), 0.0)


@pytest.mark.slow
def test_a_peer_that_never_arrives_is_an_error(tmp_path):
  start = time.time()
  proc = subprocess.run(
      [sys.executable, "-m", "agents.train", "--coordinator",
       f"127.0.0.1:{_free_port()}", "--num-processes", "2", "--process-id",
       "0", "--timeout", "3", "--out", str(tmp_path / "r")], cwd=ROOT,
      env=_env(1), capture_output=True, text=True, timeout=120)
  # JAX's runtime aborts the process (SIGABRT) after the timeout.
  assert proc.returncode != 0, proc.stderr[-3000:]
  assert "Joining a run of 2 processes" in proc.stderr
  assert "waiting up to 3 s" in proc.stderr
  assert "DEADLINE_EXCEEDED" in proc.stderr
  assert time.time() - start < 60
  assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------- poison
@pytest.mark.slow
def test_nan_loss_stops_with_the_last_good_checkpoint(tmp_path):
  """NaN rewards in the replay buffer make the loss NaN at iteration 1: the
  run stops with an error naming it, and the checkpoint on disk (iteration
  0, with finite parameters) is untouched."""
  config = _tiny()
  out = str(tmp_path / "run")
  run_dir.prepare_new_run(out, config)
  agent = algorithms.make_agent(config, envs.make(config.env))
  mesh = parallel.make_mesh(1)
  state = state_lib.sharded_init_state(agent, mesh)
  data = dict(state.buffer.data)
  data["reward"] = jnp.full_like(data["reward"], jnp.nan)
  state = state._replace(buffer=state.buffer.replace(
      data=data, count=jnp.int32(config.replay_capacity)))
  ck_dir = os.path.join(out, run_dir.CHECKPOINT_DIR)
  checkpoints.save(ck_dir, state, dict(iteration=0, elapsed_s=0.0))
  good = files(ck_dir)
  with pytest.raises(loop.TrainingDiverged,
                     match="iteration 1: non-finite loss"):
    train_lib.train(config, out, resume=True, progress=False,
                    final_eval=False, quick_eval=False, plot=False,
                    log=lambda *_: None)
  assert files(ck_dir) == good
  restored, meta = checkpoints.restore(ck_dir, checkpoints.abstract_target(
      jax.eval_shape(lambda: state), state_lib.state_shardings(agent, mesh)))
  assert meta["iteration"] == 0
  assert all(bool(jnp.all(jnp.isfinite(x)))
             for x in jax.tree_util.tree_leaves(restored.params))


# ------------------------------------------------------------------- lock
# ---------------------------------------------------------- kill -9, resume
@pytest.mark.slow
def test_kill_at_random_moments_then_resume_gives_the_same_params(tmp_path):
  config = dict(steps=12)
  args = ["--config", json.dumps(config), "--checkpoint-every", "0"]
  _finish(_worker(["train", "--out", str(tmp_path / "straight"), "--params",
                   str(tmp_path / "straight")] + args, 1))
  want = _load(tmp_path / "straight.npz")
  rng = random.Random(0)
  for seed in range(3):
    run = tmp_path / f"killed{seed}"
    proc = _worker(["train", "--out", str(run), "--params", str(run)]
                   + args, 1)
    ck_dir = run / run_dir.CHECKPOINT_DIR
    # Kill once checkpoints are being written: at a random moment, often
    # inside a save (one is written after every iteration).
    deadline = time.time() + 400
    while not (ck_dir.exists() and any(ck_dir.iterdir())):
      assert time.time() < deadline and proc.poll() is None
      time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "finished before the kill"
    print(f"killed with checkpoints {sorted(os.listdir(ck_dir))}")
    _finish(_worker(["train", "--out", str(run), "--params", str(run),
                     "--resume"] + args, 1))
    _assert_close(want, _load(str(run) + ".npz"), 0.0)


@pytest.mark.slow
def test_resume_on_another_device_count_continues_the_run(tmp_path):
  """4 shards: 2 iterations on 4 devices, then resumed on 2 devices, end
  where 4 iterations on 1 device do (the replay shards move with their
  environments)."""
  args = ["--config", json.dumps(dict(steps=4, num_shards=4))]
  run = str(tmp_path / "run")
  _finish(_worker(["train", "--out", run, "--params", run, "--devices", "4",
                   "--stop-at", "2"] + args, 4))
  _finish(_worker(["train", "--out", run, "--params", run, "--devices", "2",
                   "--resume"] + args, 4))
  one = str(tmp_path / "one")
  _finish(_worker(["train", "--out", one, "--params", one, "--devices", "1"]
                  + args, 4))
  _assert_close(_load(run + ".npz"), _load(one + ".npz"), 1e-5)


@pytest.mark.slow
def test_resume_on_a_device_count_that_does_not_divide_the_shards(tmp_path):
  """4 shards, 2 iterations on 4 devices, then `agents.train --resume` on 3
  devices: the run is re-cut into 3 shards (the environments and batch are
  divisible by 3), says so, keeps every replay column and finishes."""
  args = ["--config", json.dumps(dict(steps=2, num_shards=4, num_envs=12,
                                      batch_size=24))]
  run = tmp_path / "run"
  _finish(_worker(["train", "--out", str(run), "--params", str(tmp_path / "a"),
                   "--devices", "4"] + args, 4))
  before = json.loads((run / run_dir.RUN_FILE).read_text())["config"]
  proc = subprocess.Popen(
      [sys.executable, "-m", "agents.train", "--resume", str(run),
       "--devices", "3", "--steps", "4", "--eval-mcts-sims", "0",
       "--no-progress"], cwd=ROOT, env=_env(4), stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True)
  out = _finish(proc)
  assert "do not divide over 3 devices: continuing with 3 shards" in out, out
  after = json.loads((run / run_dir.RUN_FILE).read_text())["config"]
  assert (before["num_shards"], after["num_shards"]) == (4, 3)
  assert {k: v for k, v in after.items() if k not in ("num_shards", "steps")
          } == {k: v for k, v in before.items()
                if k not in ("num_shards", "steps")}
  lines = (run / run_dir.METRICS_FILE).read_text().splitlines()
  last = json.loads([l for l in lines if '"iteration"' in l][-1])
  assert last["iteration"] == 4 and np.isfinite(last["loss"]), last
