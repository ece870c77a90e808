"""Command line training of MuZero / AlphaZero agents.

    python -m agents.train                      # the demo: MuZero on tictactoe
    python -m agents.train --env catch --out runs/catch
    python -m agents.train --env connect4 --algo alphazero --simulations 32
    python -m agents.train --resume runs/catch  # continue a stopped run

    python -m agents.train --devices 8 ...      # data-parallel, see
                                                # docs/scaling.md

A run directory holds ``run.json`` (what the run is: its config),
``checkpoints/<iteration>/`` (the two latest orbax checkpoints: params,
optimizer state, replay buffer, actors, rng key, iteration, with a digest;
written every ``--checkpoint-every`` seconds and at the end, each process its
own shards, see :mod:`agents.runs.checkpoints`), ``metrics.jsonl`` (one
JSON line per iteration), ``eval.json`` (the final evaluation),
``learning_curve.png`` and ``.lock`` (held by a live run, see
:mod:`agents.runs.lock`). Process 0 alone writes everything but the
checkpoints (:mod:`agents.runs`).

``--resume DIR`` continues exactly where the last checkpoint of DIR left
off: training N iterations straight or N/2, stop, resume to N gives the same
parameters bit for bit (everything random is derived from the state). It
also continues on another number of devices (see docs/scaling.md).
A non-finite loss, gradient or parameter stops the run with an error naming
the iteration, before anything of that iteration is saved.

SIGTERM (preemption: SLURM, Kubernetes, cloud) or Ctrl-C stops the run at
the end of the current iteration, in every process at the same one: it
saves a checkpoint, skips the final evaluation, prints the command that
continues it (``Resume with: python -m agents.train --resume DIR``) and
exits with 128 + the signal's number (143 for SIGTERM, 130 for Ctrl-C); a
second Ctrl-C aborts at once, keeping the last checkpoint
(:mod:`agents.runs.signals`). The command line says what it compiles and
how long that took, and shows progress for the long evaluations.

This module parses the flags (:mod:`agents.train_flags`), builds the
environment and the agent once
(:func:`train`) and hands them to the training loop
(:mod:`agents.training.loop`) and its evaluation
(:mod:`agents.evaluation.during_training`).
"""
from __future__ import annotations

import datetime
import json
import math
import os
import sys
from typing import Any, Dict, Optional

import jax

import envs
from agents import algorithms
from agents import config as config_lib
from agents import train_flags
from agents.evaluation.during_training import TrainingEvaluation
from agents.evaluation.evaluator import format_report
from agents.runs import processes
from agents.runs.checkpoints import CheckpointError
from agents.runs.lock import RunLock, RunLockedError
from agents.runs.run_dir import (CHECKPOINT_DIR, METRICS_FILE, PLOT_FILE,
                                 RunError, load_run_config, prepare_new_run,
                                 write_run_file)
from agents.runs.signals import RunStopped, signal_name
from agents.training import loop
from agents.training.parallel import make_mesh


def train(config: config_lib.Config, out_dir: str, *, resume: bool = False,
          max_minutes: Optional[float] = None,
          checkpoint_every_s: float = 120.0, progress: bool = True,
          final_eval: bool = True, quick_eval: bool = True,
          plot: bool = True, stop_at: Optional[int] = None,
          devices: Optional[int] = None, mcts_simulations: int = 1000,
          solver_positions: int = 200, env=None,
          log=print) -> Dict[str, Any]:
  """Trains (or continues) the run of ``config`` in ``out_dir``; returns a
  summary dict (``params``, ``iteration``, ``final_eval``, ``metrics``...).

  Builds the environment (unless ``env`` is given), the agent, the mesh and
  the evaluation once, and hands them to :func:`agents.training.loop.train`.
  ``devices``: the mesh size (default: as many of the devices as divide
  ``config.num_shards``). Every process of a multi-process run calls it;
  process 0 alone writes metrics, the plot and the evaluation.
  ``mcts_simulations``: the final evaluation also plays OpenSpiel's MCTSBot
  with this many simulations per move, for the games OpenSpiel has (0: not).
  ``solver_positions``: Connect Four's quick evaluations log the move
  accuracy on this many solved positions, the final one on 1000 (needs
  bitbully; 0: not).
  ``stop_at``: stop (with a checkpoint) once this iteration is reached, as
  a killed run would (for tests and scripted interruptions). SIGTERM or
  SIGINT: saved at the end of the iteration, then
  :class:`~agents.runs.signals.RunStopped` (see
  :func:`agents.training.loop.train`).
  """
  config = config_lib.validate(config)
  if devices is None:
    devices = math.gcd(len(jax.devices()), config.num_shards)
  mesh = make_mesh(devices)
  agent = algorithms.make_agent(config, env or envs.make(config.env))
  evaluation = TrainingEvaluation(agent, mcts_simulations, log, progress,
                                  solver_positions=solver_positions)
  return loop.train(
      agent, out_dir, mesh, resume=resume, max_minutes=max_minutes,
      checkpoint_every_s=checkpoint_every_s, progress=progress,
      quick_evaluate=evaluation.quick if quick_eval else None,
      final_evaluate=evaluation.final if final_eval else None,
      prepare_evaluation=evaluation.prepare if quick_eval else None,
      plot=plot, stop_at=stop_at, log=log)


# ------------------------------------------------------------- command line
# Flags that define a run; they cannot change on --resume.


def _resumed_config(config, args, devices: int) -> config_lib.Config:
  """The resumed run's ``config`` with the flags that may change on resume,
  its shards re-cut when they do not divide over ``devices``."""
  updates = {}
  if config.num_shards % devices:
    # Re-cut into `devices` shards: the replay buffer is kept whole
    # (every device gets N / devices environments' columns); sampling
    # and self-play streams follow the new shards from here on.
    print(f"The run has {config.num_shards} shards, which do not divide "
          f"over {devices} devices: continuing with {devices} shards "
          "(all replay data kept; not bit-identical to a run that keeps "
          "its shards)")
    updates["num_shards"] = devices
  if args.steps is not None:
    updates["steps"] = args.steps
  if args.final_eval_games is not None:
    updates["final_eval_games"] = args.final_eval_games
  try:
    return config_lib.validate(config_lib.Config.from_dict(
        dict(config.to_dict(), **updates)))
  except ValueError as e:
    raise RunError(str(e))


def _new_run(args, env, devices: int, main_process: bool):
  """``(out_dir, config, lock)`` of a new run: its directory made (by
  process 0) and locked."""
  config = train_flags.config_from_args(args, shards=args.shards or devices,
                                        env=env)
  if jax.process_count() > 1 and not args.out:
    raise RunError("with several processes, give --out (the same "
                   "directory, on a file system all of them share)")
  out_dir = args.out or os.path.join(
      "runs", f"{config.env.replace(':', '_')}-{config.algo}-"
      f"{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}")
  lock = None
  if main_process:
    prepare_new_run(out_dir, config)
    lock = RunLock(out_dir)
  return out_dir, config, lock


def _print_summary(summary, out_dir: str) -> None:
  if "final_eval" in summary:
    fe = summary["final_eval"]
    print(f"Evaluation ({fe['games_per_side']} games per side, greedy "
          "search):")
    print(format_report(fe))
  print(f"Metrics: {os.path.join(out_dir, METRICS_FILE)}; plot: "
        f"{os.path.join(out_dir, PLOT_FILE)}")




def stop_report(stop: RunStopped, out_dir: str, steps: int, args) -> str:
  """The lines a run stopped by a signal ends with: where it stopped, what
  is saved, and the command that continues it."""
  where = os.path.join(out_dir, CHECKPOINT_DIR)
  name = signal_name(stop.signum)
  if stop.training_done:
    first = (f"Stopped by {name} in the final evaluation, after training "
             f"({stop.iteration} of {steps} iterations, saved in {where}): "
             "no eval.json; resuming runs the final evaluation")
  else:
    first = (f"Stopped by {name} at iteration {stop.iteration} of {steps}: "
             f"checkpoint saved in {where}; no final evaluation")
  return f"{first}\nResume with: {train_flags.resume_command(args, out_dir)}"


def main(argv=None) -> int:
  """Runs the command line; returns the exit status: 0, 2 for an error,
  128 + the signal's number for a run stopped by SIGTERM (143) or Ctrl-C
  (130)."""
  args = train_flags.build_parser().parse_args(argv)
  lock = None
  out_dir = None
  try:
    processes.initialize(args.coordinator, args.num_processes,
                         args.process_id, args.timeout)
    main_process = processes.is_main_process()
    devices = len(make_mesh(args.devices).devices)
    if args.eval_mcts_sims < 0:
      raise RunError(f"--eval-mcts-sims must be >= 0, got "
                     f"{args.eval_mcts_sims}")
    if args.eval_solver_positions < 0:
      raise RunError(f"--eval-solver-positions must be >= 0, got "
                     f"{args.eval_solver_positions}")
    env = None
    if args.resume:
      train_flags.check_resume_flags(args)
      out_dir = args.resume
      config = load_run_config(out_dir)
      if main_process:
        lock = RunLock(out_dir)
      resumed = _resumed_config(config, args, devices)
      if resumed != config and main_process:
        write_run_file(out_dir, resumed)
      config = resumed
    else:
      env = train_flags.make_env(args.env or "tictactoe")
      out_dir, config, lock = _new_run(args, env, devices, main_process)
    processes.barrier("run directory ready")
    print(f"Run directory: {out_dir}")
    print("Config: " + json.dumps(config.to_dict()))
    summary = train(config, out_dir, resume=bool(args.resume),
                    max_minutes=args.max_minutes,
                    checkpoint_every_s=args.checkpoint_every,
                    progress=not args.no_progress, devices=devices,
                    mcts_simulations=args.eval_mcts_sims,
                    solver_positions=args.eval_solver_positions, env=env)
  except (RunError, CheckpointError, processes.ParallelError,
          RunLockedError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except RunStopped as stop:
    print(stop_report(stop, out_dir, config.steps, args), file=sys.stderr,
          flush=True)
    return stop.exit_code
  except KeyboardInterrupt:
    print("aborted: the last checkpoint is kept" + (
        f"; continue with: {train_flags.resume_command(args, out_dir)}"
        if out_dir else ""), file=sys.stderr)
    return 130
  finally:
    if lock is not None:
      lock.release()
  _print_summary(summary, out_dir)
  return 0


if __name__ == "__main__":
  sys.exit(main())
