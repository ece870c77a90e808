"""A training process for tests/test_distributed.py, run in a subprocess (so
that XLA_FLAGS, e.g. --xla_force_host_platform_device_count, and
jax.distributed apply before JAX starts).

    python -m tests.dist_worker train --config JSON --out DIR --params P.npz
        [--resume] [--devices N] [--coordinator H:P --num-processes N
        --process-id I --timeout S] [--checkpoint-every S] [--stop-at K]
    python -m tests.dist_worker compare --config JSON --devices 1 8
        --params P.npz --hlo H.json

``train`` trains (or resumes) the tiny run in DIR and writes this process's
copy of the final parameters to ``P.npz`` (``P.<process>.npz`` with several
processes). ``compare`` runs ``config.steps`` iterations on each device count
in one process and writes the parameters (``P.<devices>.npz``) and, for the
largest count, every collective of the compiled step with its op name.
"""
import argparse
import json
import os
import re
import sys

import numpy as np


def tiny_config(overrides):
  """The tests' tiny config (plumbing, not learning), with ``overrides``
  (``env``: the game, default tic-tac-toe)."""
  from agents import config as config_lib  # pylint: disable=g-import-not-at-top
  base = dict(num_simulations=4, num_envs=8, selfplay_steps=8,
              batch_size=16, updates_per_iter=8, width=32, latent_size=16,
              repr_blocks=1, dyn_blocks=1, pred_blocks=1, value_bins=11,
              learning_rate=3e-3, steps=4, eval_every=1000, eval_games=4,
              final_eval_games=4, unroll_steps=2, td_steps=4,
              replay_capacity=32)
  base.update(overrides)
  return config_lib.make_config(base.pop("env", "tictactoe"), **base)


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
  from agents import parallel  # pylint: disable=g-import-not-at-top
  parallel.initialize(args.coordinator, args.num_processes, args.process_id,
                      args.timeout)
  import jax  # pylint: disable=g-import-not-at-top
  from agents import learner  # pylint: disable=g-import-not-at-top
  from agents import train as train_lib  # pylint: disable=g-import-not-at-top
  config = tiny_config(json.loads(args.config))
  if args.mode == "compare":
    for d in args.devices:
      mesh = parallel.make_mesh(d)
      state = learner.sharded_init_state(config, mesh)
      step = learner.jitted_train_step(config, mesh)
      if d == max(args.devices) and args.hlo:
        text = step.lower(state).compile().as_text()
        with open(args.hlo, "w") as f:
          json.dump(dict(collectives=collectives(text),
                         selfplay_ops=text.count("/selfplay/")), f)
      for _ in range(config.steps):
        state, _ = step(state)
      save_params(f"{args.params}.{d}.npz", parallel.fetch(state.params))
    return 0
  if not args.resume and parallel.is_main_process():
    train_lib.prepare_new_run(args.out, config)
  parallel.barrier("prepared")
  devices = args.devices[0] if args.devices else None
  summary = train_lib.train(
      config, args.out, resume=args.resume, progress=False,
      final_eval=False, quick_eval=False, plot=False, devices=devices,
      checkpoint_every_s=args.checkpoint_every, stop_at=args.stop_at,
      log=lambda *a: print(*a, flush=True))
  path = args.params
  if jax.process_count() > 1:
    path = f"{path}.{jax.process_index()}"
  save_params(path + ".npz", summary["params"])
  print(f"done {summary['iteration']}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
