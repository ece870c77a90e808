"""Scaling of data-parallel training: environment steps and updates per second.

    python -m benchmarks.scaling                 # all three measurements
    python -m benchmarks.scaling --iters 5 --json benchmarks/results/scaling.json
    python -m benchmarks.scaling --preset demo --iters 10 --skip-devices
    python -m benchmarks.scaling --preset connect4 --iters 10 --skip-devices

1. *processes* (weak scaling): 1 process pinned to one core against 2
   processes, each pinned to its own core (``os.sched_setaffinity`` before
   JAX starts, as ``taskset`` would) and joined by ``jax.distributed`` on
   127.0.0.1; every process has the same sizes (``--envs`` and
   ``--batch-size`` per process), so 2 processes do twice the work per
   iteration. Target: 2 processes >= 1.7x the env steps/s of one.
2. *forced devices* (informative only: they share the process's cores):
   1, 2, 4, 8 CPU devices in one process
   (``--xla_force_host_platform_device_count``), the same global sizes.

Every configuration is timed after its compilation, over ``--iters``
training iterations (self-play with search, replay, updates). Absolute
numbers depend on the machine and its load: compare rows of one run.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Per-process sizes of the presets: "tiny" (an 18 ms iteration on one core,
# where the all-reduces dominate), "demo" (tic-tac-toe's defaults, the
# `make demo` run: 128 environments, 16 simulations, 8 updates of 256) and
# "connect4" (Connect Four's defaults as they were when the README's
# scaling table was measured: 128 environments, 32 simulations, 16
# self-play steps, 8 updates of 256 from 96 steps per game, width 256).
PRESETS = {"tiny": dict(envs=32, batch=64), "demo": dict(envs=128, batch=256),
           "connect4": dict(envs=128, batch=256)}


def _config(preset, envs, batch, shards):
  from agents import config as config_lib  # pylint: disable=g-import-not-at-top
  sizes = dict(num_envs=envs, batch_size=batch, num_shards=shards,
               steps=10**6)
  if preset == "demo":
    return config_lib.make_config("tictactoe", **sizes)
  if preset == "connect4":
    return config_lib.make_config("connect4", updates_per_iter=8,
                                  replay_capacity=96, **sizes)
  return config_lib.make_config(
      "tictactoe", num_simulations=8, selfplay_steps=8, updates_per_iter=4,
      width=64, latent_size=32, replay_capacity=64, td_steps=4,
      unroll_steps=3, **sizes)


def worker(args) -> None:
  """One process of a measurement; process 0 prints a JSON line."""
  from agents.runs import processes  # pylint: disable=g-import-not-at-top
  if args.num_processes > 1:
    processes.initialize(args.coordinator, args.num_processes,
                         args.process_id, 120)
  import jax  # pylint: disable=g-import-not-at-top
  import envs  # pylint: disable=g-import-not-at-top
  from agents import algorithms  # pylint: disable=g-import-not-at-top
  from agents.training import parallel  # pylint: disable=g-import-not-at-top
  from agents.training import state as state_lib  # pylint: disable=g-import-not-at-top
  from agents.training import step as step_lib  # pylint: disable=g-import-not-at-top
  devices = args.devices or len(jax.devices())
  config = _config(args.preset, args.envs, args.batch,
                   args.shards or devices)
  agent = algorithms.make_agent(config, envs.make(config.env))
  mesh = parallel.make_mesh(devices)
  state = state_lib.sharded_init_state(agent, mesh)
  step = step_lib.jitted_train_step(agent, mesh)
  start = time.perf_counter()
  state, _ = step(state)
  jax.block_until_ready(state)
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(args.iters):
    state, metrics = step(state)
  jax.block_until_ready((state, metrics))
  seconds = time.perf_counter() - start
  if processes.is_main_process():
    print(json.dumps(dict(
        processes=jax.process_count(), devices=devices,
        envs=config.num_envs, batch_size=config.batch_size,
        iters=args.iters, compile_s=round(compile_s, 2),
        seconds=round(seconds, 3),
        env_steps_per_s=round(args.iters * config.selfplay_steps
                              * config.num_envs / seconds, 1),
        updates_per_s=round(args.iters * config.updates_per_iter
                            / seconds, 2))), flush=True)


def _launch(argv, cores=None, devices=1):
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  env["JAX_PLATFORMS"] = "cpu"
  pin = None
  if cores is not None:
    pin = lambda: os.sched_setaffinity(0, cores)  # pylint: disable=unnecessary-lambda-assignment
  return subprocess.Popen(
      [sys.executable, "-m", "benchmarks.scaling", "--worker"] + argv,
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True, preexec_fn=pin)


def _result(procs):
  rows = []
  for p in procs:
    out, err = p.communicate()
    if p.returncode:
      raise RuntimeError(f"worker failed: {err[-3000:]}")
    rows += [json.loads(l) for l in out.splitlines() if l.startswith("{")]
  return rows[0]


def measure_processes(preset, envs, batch, iters):
  cores = sorted(os.sched_getaffinity(0))
  common = ["--iters", str(iters), "--preset", preset]
  one = _result([_launch(common + ["--envs", str(envs), "--batch",
                                   str(batch)], cores={cores[0]})])
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  two = _result([_launch(common + [
      "--envs", str(2 * envs), "--batch", str(2 * batch),
      "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
      "--process-id", str(i)], cores={cores[i % len(cores)]})
                 for i in range(2)])
  return one, two


def measure_devices(preset, envs, batch, iters, counts=(1, 2, 4, 8)):
  return [_result([_launch(["--iters", str(iters), "--preset", preset,
                            "--envs", str(envs),
                            "--batch", str(batch), "--shards",
                            str(max(counts))], devices=d)])
          for d in counts]


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m benchmarks.scaling",
                              description=__doc__.splitlines()[0])
  p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--preset", choices=sorted(PRESETS), default="tiny",
                 help="model and search sizes (default tiny)")
  p.add_argument("--envs", type=int,
                 help="environments per process (processes) or in all "
                 "(devices); default: the preset's")
  p.add_argument("--batch", type=int, help="default: the preset's")
  p.add_argument("--iters", type=int, default=5)
  p.add_argument("--devices", type=int)
  p.add_argument("--shards", type=int)
  p.add_argument("--coordinator")
  p.add_argument("--num-processes", type=int, default=1)
  p.add_argument("--process-id", type=int, default=0)
  p.add_argument("--skip-devices", action="store_true")
  p.add_argument("--json", help="also write the results to this file")
  args = p.parse_args(argv)
  args.envs = args.envs or PRESETS[args.preset]["envs"]
  args.batch = args.batch or PRESETS[args.preset]["batch"]
  if args.worker:
    worker(args)
    return
  one, two = measure_processes(args.preset, args.envs, args.batch,
                               args.iters)
  ratio = two["env_steps_per_s"] / one["env_steps_per_s"]
  print("processes (weak scaling, one core each):")
  for r in (one, two):
    print(f"  {r['processes']} x {r['envs'] // r['processes']} envs: "
          f"{r['env_steps_per_s']:9.1f} env steps/s  "
          f"{r['updates_per_s']:6.2f} updates/s  (compile {r['compile_s']} s)")
  print(f"  2 processes / 1 process: {ratio:.2f}x env steps/s "
        f"(target >= 1.7x: {'met' if ratio >= 1.7 else 'NOT met'})")
  results = dict(preset=args.preset, processes=[one, two],
                 process_ratio=round(ratio, 3),
                 cores=len(os.sched_getaffinity(0)),
                 load_average=os.getloadavg())
  if not args.skip_devices:
    rows = measure_devices(args.preset, args.envs, args.batch, args.iters)
    print("forced devices in one process (informative; shared cores):")
    for r in rows:
      print(f"  {r['devices']} devices: {r['env_steps_per_s']:9.1f} env "
            f"steps/s  {r['updates_per_s']:6.2f} updates/s")
    results["devices"] = rows
  if args.json:
    with open(args.json, "w") as f:
      json.dump(results, f, indent=2)
      f.write("\n")


if __name__ == "__main__":
  main()
