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

This module parses the flags, builds the environment and the agent once
(:func:`train`) and hands them to the training loop
(:mod:`agents.training.loop`) and its evaluation
(:mod:`agents.evaluation.during_training`).
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shlex
import sys
from typing import Any, Dict, Optional

import jax

import envs
from agents import algorithms
from agents import config as config_lib
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
from agents.training.targets import window_length


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
_RUN_FLAGS = dict(env="env", algo="algo", policy="policy",
                  simulations="num_simulations", seed="seed",
                  envs="num_envs", batch_size="batch_size",
                  updates_per_iter="updates_per_iter",
                  replay_capacity="replay_capacity",
                  lr="learning_rate", unroll_steps="unroll_steps",
                  td_steps="td_steps", eval_every="eval_every",
                  eval_games="eval_games", shards="num_shards",
                  reanalyse="reanalyse_fraction",
                  code_usage_weight="code_usage_weight")


def _show(value) -> str:
  return "to the episode end" if value is None else f"{value:g}" if (
      isinstance(value, float)) else str(value)


def game_defaults(field: str) -> str:
  """``"default X"`` of a config field, with the games whose default
  differs (``"default 16; connect4 32, pgx:<id> 32"``), or ``"default per
  game: ..."`` when no value is shared."""
  values = {name: _show(getattr(config_lib.make_config(name), field))
            for name in envs.VALID_NAMES}
  counts = {v: list(values.values()).count(v) for v in values.values()}
  common = max(counts, key=counts.get)
  if counts[common] == 1:
    return "default per game: " + ", ".join(
        f"{name} {v}" for name, v in values.items())
  others = [f"{name} {v}" for name, v in values.items() if v != common]
  return f"default {common}" + ("; " + ", ".join(others) if others else "")


def build_parser() -> argparse.ArgumentParser:
  """The flags of ``python -m agents.train`` (no abbreviations: a typo such
  as ``--step 3`` is an error, not ``--steps 3``)."""
  games = ", ".join(envs.VALID_NAMES)
  p = argparse.ArgumentParser(
      prog="python -m agents.train", allow_abbrev=False,
      description="Train MuZero / AlphaZero / Stochastic MuZero with "
      "batched MCTS. With no arguments: the demo (MuZero with a learned "
      "model and the Gumbel policy on tic-tac-toe, then an evaluation "
      "against random and perfect players). SIGTERM or Ctrl-C: a "
      "checkpoint at the end of the iteration, no final evaluation, the "
      "--resume command printed, exit status 128 + the signal (143, 130).",
      epilog=f"Games: {games} (any pgx game id, e.g. pgx:go_9x9; needs "
      f"pgx). Algorithms: {', '.join(config_lib.ALGOS)}. Settings not "
      "given take the game's defaults (agents/config.py).")
  game = lambda field: "(" + game_defaults(field) + ")"
  p.add_argument("--env", metavar="GAME",
                 help=f"the game: {' | '.join(envs.VALID_NAMES)} "
                 "(default tictactoe)")
  p.add_argument("--algo", choices=config_lib.ALGOS,
                 help="muzero (learned model), alphazero (the true game in "
                 "the search) or stochastic_muzero (learned model with "
                 "chance outcomes) " + game("algo"))
  p.add_argument("--policy", choices=config_lib.POLICIES,
                 help="gumbel (Gumbel MuZero) or muzero (pUCT; the only "
                 "one of stochastic_muzero) " + game("policy"))
  p.add_argument("--simulations", type=int,
                 help="simulations per search " + game("num_simulations"))
  p.add_argument("--seed", type=int, help="the run's seed " + game("seed"))
  p.add_argument("--steps", type=int,
                 help="training iterations in total (each: self-play of "
                 "--envs games for some steps, then some updates) "
                 + game("steps"))
  p.add_argument("--envs", type=int,
                 help="parallel self-play games " + game("num_envs"))
  p.add_argument("--batch-size", type=int,
                 help="windows per gradient step " + game("batch_size"))
  p.add_argument("--updates-per-iter", type=int,
                 help="gradient steps per iteration (each on --batch-size "
                 "windows) " + game("updates_per_iter"))
  p.add_argument("--replay-capacity", type=int,
                 help="time steps kept per self-play environment "
                 + game("replay_capacity"))
  p.add_argument("--lr", type=float, help="learning rate (cosine decay to "
                 "10%% over the run) " + game("learning_rate"))
  p.add_argument("--unroll-steps", type=int,
                 help="K, the model's unrolled steps (muzero, "
                 "stochastic_muzero; alphazero: 0) " + game("unroll_steps"))
  p.add_argument("--td-steps", type=int,
                 help="n for value targets " + game("td_steps"))
  p.add_argument("--reanalyse", type=float, metavar="F",
                 help="MuZero Reanalyse: fraction F in [0, 1] of every "
                 "batch gets fresh policy and value targets from new "
                 "searches with the current parameters (muzero only; "
                 "see docs/agents.md) " + game("reanalyse_fraction"))
  p.add_argument("--code-usage-weight", type=float, metavar="W",
                 help="Stochastic MuZero: weight of the term that asks the "
                 "chance encoder to use many codes over a batch (see "
                 "docs/stochastic_muzero.md) " + game("code_usage_weight"))
  p.add_argument("--eval-every", type=int, help="iterations between quick "
                 "evaluations " + game("eval_every"))
  p.add_argument("--eval-games", type=int, help="games per side in quick "
                 "evaluations " + game("eval_games"))
  p.add_argument("--final-eval-games", type=int,
                 help="games per side in the final evaluation "
                 + game("final_eval_games"))
  p.add_argument("--eval-mcts-sims", type=int, default=1000,
                 metavar="N", help="the final evaluation also plays "
                 "OpenSpiel's MCTSBot with N simulations per move "
                 "(tictactoe, connect4; needs open_spiel; 0: not) "
                 "(default %(default)s)")
  p.add_argument("--eval-solver-positions", type=int, default=200,
                 metavar="N", help="connect4: the quick evaluations log "
                 "the move accuracy on N positions solved by a perfect "
                 "solver, the final one on 1000 (needs bitbully; 0: not) "
                 "(default %(default)s)")
  p.add_argument("--out", help="run directory (new or empty) (default "
                 "runs/<env>-<algo>-<time>)")
  p.add_argument("--resume", metavar="DIR",
                 help="continue the run in DIR from its last checkpoint "
                 "(default: a new run)")
  p.add_argument("--max-minutes", type=float,
                 help="stop (with a checkpoint) after this much training "
                 "(default: no limit)")
  p.add_argument("--checkpoint-every", type=float, default=120.0,
                 metavar="SECONDS", help="seconds between checkpoints "
                 "(default %(default)g)")
  p.add_argument("--no-progress", action="store_true",
                 help="no progress bars (default: progress bars)")
  g = p.add_argument_group(
      "devices and hosts", "Data-parallel training over a mesh of devices; "
      "with several processes, every process runs the same command. See "
      "docs/scaling.md.")
  g.add_argument("--devices", type=int,
                 help="devices to use (default: all devices of all "
                 "processes; a new run is cut into that many shards)")
  g.add_argument("--shards", type=int,
                 help="shards of a new run: a run gives the same results "
                 "on any device count dividing it (default --devices)")
  g.add_argument("--coordinator", metavar="HOST:PORT",
                 help="address of process 0 (default JAX_COORDINATOR_"
                 "ADDRESS; SLURM, Open MPI and Cloud TPU are detected by "
                 "JAX; none: one process)")
  g.add_argument("--num-processes", type=int,
                 help="processes in the run (default JAX_NUM_PROCESSES)")
  g.add_argument("--process-id", type=int,
                 help="this process's index (default JAX_PROCESS_ID)")
  g.add_argument("--timeout", type=int, default=processes.DEFAULT_TIMEOUT_S,
                 metavar="SECONDS", help="a peer that does not arrive, or "
                 "dies, stops the others with an error after about this "
                 "long (default %(default)s)")
  return p


def make_env(name: str):
  """``envs.make(name)``; a bad name is a :class:`RunError`."""
  try:
    return envs.make(name)
  except (ValueError, ImportError) as e:
    raise RunError(str(e))


def config_from_args(args, shards: int = 1, env=None) -> config_lib.Config:
  """The config of a new run from the flags (``env``: the environment of
  ``--env``, built here if not given)."""
  env_name = args.env or "tictactoe"
  env = env or make_env(env_name)
  if args.simulations is not None and args.simulations < 1:
    raise RunError(f"--simulations must be a positive integer, got "
                   f"{args.simulations}")
  overrides = {field: getattr(args, flag)
               for flag, field in _RUN_FLAGS.items() if flag != "env"}
  overrides["steps"] = args.steps
  overrides["final_eval_games"] = args.final_eval_games
  overrides["num_shards"] = shards
  try:
    config = config_lib.make_config(env_name, **overrides)
    window_length(config, env)
  except ValueError as e:
    raise RunError(str(e))
  return config


def _check_resume_flags(args) -> None:
  """Refuses flags that cannot go with ``--resume``."""
  if args.out and os.path.abspath(args.out) != os.path.abspath(args.resume):
    raise RunError("give either --resume DIR or --out DIR, not both")
  changed = [f"--{flag.replace('_', '-')}" for flag in _RUN_FLAGS
             if getattr(args, flag) is not None]
  if changed:
    raise RunError(f"{', '.join(changed)} cannot change when resuming "
                   "(the run's settings are in its run.json); only "
                   "--steps, --max-minutes, --final-eval-games, "
                   "--eval-mcts-sims, --eval-solver-positions, "
                   "--checkpoint-every and the devices "
                   "and hosts can")


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
  config = config_from_args(args, shards=args.shards or devices, env=env)
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


# Flags that a resumed run does not read from run.json: the resume command
# repeats them.
_SESSION_FLAGS = ("eval_mcts_sims", "eval_solver_positions",
                  "checkpoint_every", "no_progress",
                  "devices", "coordinator", "num_processes", "process_id",
                  "timeout")


def resume_command(args, out_dir: str) -> str:
  """The command that continues the run in ``out_dir`` as ``args`` ran it:
  ``python -m agents.train --resume DIR`` and the flags of
  ``_SESSION_FLAGS`` that ``args`` set."""
  parser = build_parser()
  words = ["python", "-m", "agents.train", "--resume", out_dir]
  for dest in _SESSION_FLAGS:
    value = getattr(args, dest)
    if value != parser.get_default(dest):
      flag = "--" + dest.replace("_", "-")
      words += [flag] if value is True else [flag, f"{value:g}" if (
          isinstance(value, float)) else str(value)]
  return " ".join(shlex.quote(w) for w in words)


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
  return f"{first}\nResume with: {resume_command(args, out_dir)}"


def main(argv=None) -> int:
  """Runs the command line; returns the exit status: 0, 2 for an error,
  128 + the signal's number for a run stopped by SIGTERM (143) or Ctrl-C
  (130)."""
  args = build_parser().parse_args(argv)
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
      _check_resume_flags(args)
      out_dir = args.resume
      config = load_run_config(out_dir)
      if main_process:
        lock = RunLock(out_dir)
      resumed = _resumed_config(config, args, devices)
      if resumed != config and main_process:
        write_run_file(out_dir, resumed)
      config = resumed
    else:
      env = make_env(args.env or "tictactoe")
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
        f"; continue with: {resume_command(args, out_dir)}" if out_dir
        else ""), file=sys.stderr)
    return 130
  finally:
    if lock is not None:
      lock.release()
  _print_summary(summary, out_dir)
  return 0


if __name__ == "__main__":
  sys.exit(main())
