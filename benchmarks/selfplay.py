"""Self-play throughput: environment steps per second, with search.

For each game, times ONE jitted self-play call (``--steps`` lockstep steps of
``--envs`` environments, a search of ``--simulations`` simulations per step,
auto-reset; exactly what a training iteration does before learning) with
the game's default network from :mod:`agents.config`, and reports compile
time and environment steps per second (median of ``--repeats`` calls).

    python -m benchmarks.selfplay                      # all games, defaults
    python -m benchmarks.selfplay --games tictactoe --envs 64 256 --quick

Absolute numbers depend on the machine (and its load); compare rows taken in
one process.
"""
from __future__ import annotations

import argparse
import json
import time

import jax

import envs
from agents import algorithms
from agents import config as config_lib
from agents.training import selfplay as selfplay_lib
from agents.training.state import init_train_state
from benchmarks import common

DEFAULT_RUNS = (("tictactoe", "muzero"), ("catch", "muzero"),
                ("connect4", "muzero"), ("connect4", "alphazero"))


def bench_one(env_name, algo, policy, num_envs, num_simulations, num_steps,
              repeats):
  config = config_lib.make_config(
      env_name, algo=algo, policy=policy, num_envs=num_envs,
      num_simulations=num_simulations, selfplay_steps=num_steps)
  env = envs.make(env_name)
  agent = algorithms.make_agent(config, env)
  state = init_train_state(agent)
  fn = selfplay_lib.make_selfplay(agent, num_steps)
  key = jax.random.PRNGKey(0)
  compiled, compile_s = common.compile_timed(fn, state.params, state.actor,
                                             key)
  times = []
  actor = state.actor
  for i in range(repeats):
    start = time.perf_counter()
    actor, traj, _ = compiled(state.params, actor, jax.random.fold_in(key, i))
    jax.block_until_ready(traj)
    times.append(time.perf_counter() - start)
  seconds = common.median(times)
  return dict(env=env_name, algo=algo, policy=policy, envs=num_envs,
              simulations=config.num_simulations, steps=num_steps,
              compile_s=compile_s, seconds=seconds,
              env_steps_per_s=num_envs * num_steps / seconds,
              searches_per_s=num_envs * num_steps / seconds,
              simulations_per_s=(num_envs * num_steps
                                 * config.num_simulations / seconds))


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m benchmarks.selfplay",
                              description=__doc__.splitlines()[0])
  p.add_argument("--games", nargs="*", help="e.g. tictactoe catch "
                 "connect4:alphazero (default: all games)")
  p.add_argument("--envs", type=int, nargs="*", default=[128])
  p.add_argument("--simulations", type=int, default=None,
                 help="default: the game's training default")
  p.add_argument("--policy", default="gumbel",
                 choices=config_lib.POLICIES)
  p.add_argument("--steps", type=int, default=16)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--quick", action="store_true", help="2 repeats, 8 steps")
  p.add_argument("--json", help="also write the rows to this file")
  args = p.parse_args(argv)
  if args.quick:
    args.repeats, args.steps = 2, 8
  runs = DEFAULT_RUNS
  if args.games:
    runs = []
    for g in args.games:
      name, _, algo = g.partition(":")
      if name == "pgx":  # "pgx:<id>[:algo]"
        env_id, _, algo = algo.partition(":")
        name = f"pgx:{env_id}"
      runs.append((name, algo or "muzero"))
  rows = []
  for env_name, algo in runs:
    for n in args.envs:
      rows.append(bench_one(env_name, algo, args.policy, n, args.simulations,
                            args.steps, args.repeats))
      r = rows[-1]
      print(f"  {env_name} {algo} envs={n}: {r['env_steps_per_s']:.0f} "
            f"env steps/s (compile {r['compile_s']:.1f} s)", flush=True)
  env_info = common.environment()
  print(f"\nSelf-play throughput on {env_info['device']} "
        f"(jax {env_info['jax_version']}), {args.policy} policy, "
        f"{args.steps} steps per call, median of {args.repeats}:")
  header = ["game", "algo", "envs", "sims", "compile s", "call s",
            "env steps/s", "sims/s"]
  table = [[r["env"], r["algo"], str(r["envs"]), str(r["simulations"]),
            common.fmt(r["compile_s"], ".1f"), common.fmt(r["seconds"], ".3f"),
            common.fmt(r["env_steps_per_s"], ".0f"),
            common.fmt(r["simulations_per_s"], ".0f")] for r in rows]
  print(common.format_table(header, table))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(dict(environment=env_info, rows=rows), f, indent=2)


if __name__ == "__main__":
  main()
