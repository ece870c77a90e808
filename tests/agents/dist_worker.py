"""A training process for tests/agents/test_distributed.py, run in a
subprocess (so that XLA_FLAGS, e.g. --xla_force_host_platform_device_count,
and jax.distributed apply before JAX starts).

    python -m tests.agents.dist_worker train --config JSON --out DIR
        --params P.npz [--resume] [--devices N] [--coordinator H:P
        --num-processes N --process-id I --timeout S] [--checkpoint-every S]
        [--stop-at K]
    python -m tests.agents.dist_worker compare --config JSON --devices 1 8
        --params P.npz --hlo H.json

``train`` trains (or resumes) the tiny run in DIR and writes this process's
copy of the final parameters to ``P.npz`` (``P.<process>.npz`` with several
processes); stopped by a signal, it prints ``stopped <iteration>`` and exits
128 + the signal's number. ``compare`` runs ``config.steps`` iterations on each device count
in one process and writes the parameters (``P.<devices>.npz``) and, for the
largest count, every collective of the compiled step with its op name.
"""
import argparse
import json
import re
import sys

import numpy as np

from tests.agents.helpers import tiny_config


def save_params(path, params):
  import jax  # pylint: disable=g-import-not-at-top
  leaves = jax.tree_util.tree_leaves(params)
  np.savez(path, *[np.asarray(x) for x in leaves])


COLLECTIVE = re.compile(
    r"\b(all-reduce|all-gather|all-to-all|collective-permute|reduce-scatter"
    r"|collective-broadcast|ragged-all-to-all)(-start)?\(")


def collectives(hlo_text):
  """``[(op, op_name)]`` of every collective in compiled HLO text."""
  out = []
  for line in hlo_text.splitlines():
    m = COLLECTIVE.search(line)
    if m and "=" in line:
      name = re.search(r'op_name="([^"]*)"', line)
      out.append((m.group(1), name.group(1) if name else ""))
  return out


def main(argv):
  p = argparse.ArgumentParser()
  p.add_argument("mode", choices=("train", "compare"))
  p.add_argument("--config", default="{}")
  p.add_argument("--out")
  p.add_argument("--params")
  p.add_argument("--hlo")
  p.add_argument("--resume", action="store_true")
  p.add_argument("--devices", type=int, nargs="*")
  p.add_argument("--coordinator")
  p.add_argument("--num-processes", type=int)
  p.add_argument("--process-id", type=int)
  p.add_argument("--timeout", type=int, default=60)
  p.add_argument("--checkpoint-every", type=float, default=1e9)
  p.add_argument("--stop-at", type=int)
  args = p.parse_args(argv)
  from agents.runs import processes  # pylint: disable=g-import-not-at-top
  processes.initialize(args.coordinator, args.num_processes, args.process_id,
                       args.timeout)
  import jax  # pylint: disable=g-import-not-at-top
  import envs  # pylint: disable=g-import-not-at-top
  from agents import algorithms  # pylint: disable=g-import-not-at-top
  from agents import train as train_lib  # pylint: disable=g-import-not-at-top
  from agents.runs import run_dir  # pylint: disable=g-import-not-at-top
  from agents.training import parallel  # pylint: disable=g-import-not-at-top
  from agents.training import state as state_lib  # pylint: disable=g-import-not-at-top
  from agents.training import step as step_lib  # pylint: disable=g-import-not-at-top
  config = tiny_config(json.loads(args.config))
  if args.mode == "compare":
    agent = algorithms.make_agent(config, envs.make(config.env))
    for d in args.devices:
      mesh = parallel.make_mesh(d)
      state = state_lib.sharded_init_state(agent, mesh)
      step = step_lib.jitted_train_step(agent, mesh)
      if d == max(args.devices) and args.hlo:
        text = step.lower(state).compile().as_text()
        with open(args.hlo, "w") as f:
          json.dump(dict(collectives=collectives(text),
                         selfplay_ops=text.count("/selfplay/")), f)
      for _ in range(config.steps):
        state, _ = step(state)
      save_params(f"{args.params}.{d}.npz", processes.fetch(state.params))
    return 0
  if not args.resume and processes.is_main_process():
    run_dir.prepare_new_run(args.out, config)
  processes.barrier("prepared")
  from agents.runs.signals import RunStopped  # pylint: disable=g-import-not-at-top
  devices = args.devices[0] if args.devices else None
  try:
    summary = train_lib.train(
        config, args.out, resume=args.resume, progress=False,
        final_eval=False, quick_eval=False, plot=False, devices=devices,
        checkpoint_every_s=args.checkpoint_every, stop_at=args.stop_at,
        log=lambda *a: print(*a, flush=True))
  except RunStopped as e:
    print(f"stopped {e.iteration}", flush=True)
    return e.exit_code
  path = args.params
  if jax.process_count() > 1:
    path = f"{path}.{jax.process_index()}"
  save_params(path + ".npz", summary["params"])
  print(f"done {summary['iteration']}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
