"""The flags of ``python -m agents.train``: the parser (every game,
algorithm and default named; no abbreviations), the per-game defaults it
shows, the config of a new run from the flags, what may change on
``--resume``, and the command that resumes a run."""
from __future__ import annotations

import argparse
import os
import shlex

import envs
from agents import config as config_lib
from agents.runs import processes
from agents.runs.run_dir import RunError
from agents.training.augment import check_mirror
from agents.training.state import check_replay_capacity


RUN_FLAGS = dict(env="env", algo="algo", policy="policy",
                  simulations="num_simulations", seed="seed",
                  envs="num_envs", batch_size="batch_size",
                  updates_per_iter="updates_per_iter",
                  replay_capacity="replay_capacity",
                  lr="learning_rate", unroll_steps="unroll_steps",
                  td_steps="td_steps", eval_every="eval_every",
                  eval_games="eval_games", shards="num_shards",
                  reanalyse="reanalyse_fraction",
                  code_usage_weight="code_usage_weight",
                  mirror="mirror",
                  consistency_weight="consistency_weight",
                  terminal_reward_weight="terminal_reward_weight",
                  reconstruction_weight="reconstruction_weight",
                  end_weight="end_weight",
                  temperature="temperature",
                  root_value_mix="root_value_mix",
                  torso="torso", channels="channels")


def _show(value) -> str:
  if isinstance(value, tuple):
    return " ".join(_show(v) for v in value)
  if isinstance(value, bool):
    return "on" if value else "off"
  return "to the episode end" if value is None else f"{value:g}" if (
      isinstance(value, float)) else str(value)


def _on_off(text: str) -> bool:
  if text not in ("on", "off"):
    raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
  return text == "on"


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
  p.add_argument("--mirror", type=_on_off, metavar="{on,off}",
                 help="reflect each replayed window left-right with "
                 "probability 1/2 (data augmentation by the game's "
                 "symmetry; connect4, tictactoe) " + game("mirror"))
  p.add_argument("--consistency-weight", type=float, metavar="W",
                 help="MuZero: weight W >= 0 of EfficientZero's temporal "
                 "consistency loss, which pulls each unrolled latent "
                 "towards the representation of the observation seen "
                 "there (muzero only; 0: off; see docs/agents.md) "
                 + game("consistency_weight"))
  p.add_argument("--terminal-reward-weight", type=float, metavar="W",
                 help="MuZero: weight W > 0 of the reward loss on the "
                 "transitions that end an episode, which board games "
                 "reward alone (muzero only; 1: unweighted; see "
                 "docs/agents.md) " + game("terminal_reward_weight"))
  p.add_argument("--reconstruction-weight", type=float, metavar="W",
                 help="MuZero: weight W >= 0 of a decoder's loss that reads "
                 "every latent, root and unrolled, back into the "
                 "observation it stands for (features in [0, 1]; muzero "
                 "only; 0: off; see docs/agents.md) "
                 + game("reconstruction_weight"))
  p.add_argument("--end-weight", type=float, metavar="W",
                 help="MuZero: weight W >= 0 of a head that predicts "
                 "whether the episode has ended by each latent; the search "
                 "scales its discount by the probability that it goes on "
                 "(muzero only; 0: off; see docs/agents.md) "
                 + game("end_weight"))
  p.add_argument("--temperature", type=float, nargs="+", metavar="T",
                 help="self-play's temperature (pUCT: actions drawn from "
                 "the visit counts raised to 1/T; gumbel: T scales the "
                 "Gumbel noise; 0: the search's choice): one T for the "
                 "whole run, or several for equal stretches of it, e.g. "
                 "MuZero's schedule 1 1 0.5 0.25 "
                 + game("temperature"))
  p.add_argument("--root-value-mix", type=float, metavar="A",
                 help="value targets (1 - A) z + A q: z the n-step return, "
                 "q the search's root value at that step (0: z alone; see "
                 "docs/agents.md) " + game("root_value_mix"))
  p.add_argument("--torso", choices=config_lib.TORSOS,
                 help="the networks' torso: mlp, residual MLPs on the "
                 "flattened observation; conv, MuZero's residual 3x3 "
                 "convolutions over an image observation, with a latent of "
                 "the board's shape (muzero, alphazero; see docs/agents.md) "
                 + game("torso"))
  p.add_argument("--channels", type=int, metavar="C",
                 help="channels of the conv torso " + game("channels"))
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
               for flag, field in RUN_FLAGS.items() if flag != "env"}
  overrides["steps"] = args.steps
  overrides["final_eval_games"] = args.final_eval_games
  overrides["num_shards"] = shards
  try:
    config = config_lib.make_config(env_name, **overrides)
    check_replay_capacity(config, env)
    if config.mirror:
      check_mirror(env)
  except ValueError as e:
    raise RunError(str(e))
  return config


def check_resume_flags(args) -> None:
  """Refuses flags that cannot go with ``--resume``."""
  if args.out and os.path.abspath(args.out) != os.path.abspath(args.resume):
    raise RunError("give either --resume DIR or --out DIR, not both")
  changed = [f"--{flag.replace('_', '-')}" for flag in RUN_FLAGS
             if getattr(args, flag) is not None]
  if changed:
    raise RunError(f"{', '.join(changed)} cannot change when resuming "
                   "(the run's settings are in its run.json); only "
                   "--steps, --max-minutes, --final-eval-games, "
                   "--eval-mcts-sims, --eval-solver-positions, "
                   "--checkpoint-every and the devices "
                   "and hosts can")


# Flags that a resumed run does not read from run.json: the resume command
# repeats them.
SESSION_FLAGS = ("eval_mcts_sims", "eval_solver_positions",
                  "checkpoint_every", "no_progress",
                  "devices", "coordinator", "num_processes", "process_id",
                  "timeout")


def resume_command(args, out_dir: str) -> str:
  """The command that continues the run in ``out_dir`` as ``args`` ran it:
  ``python -m agents.train --resume DIR`` and the flags of
  ``SESSION_FLAGS`` that ``args`` set."""
  parser = build_parser()
  words = ["python", "-m", "agents.train", "--resume", out_dir]
  for dest in SESSION_FLAGS:
    value = getattr(args, dest)
    if value != parser.get_default(dest):
      flag = "--" + dest.replace("_", "-")
      words += [flag] if value is True else [flag, f"{value:g}" if (
          isinstance(value, float)) else str(value)]
  return " ".join(shlex.quote(w) for w in words)
