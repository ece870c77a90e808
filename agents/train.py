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
own shards, see :mod:`agents.sharded_checkpoint`), ``metrics.jsonl`` (one
JSON line per iteration), ``eval.json`` (the final evaluation),
``learning_curve.png`` and ``.lock`` (held by a live run, see
:mod:`agents.run_lock`). Process 0 alone writes everything but the
checkpoints.

``--resume DIR`` continues exactly where the last checkpoint of DIR left
off: training N iterations straight or N/2, stop, resume to N gives the same
parameters bit for bit (everything random is derived from the state). It
also continues on another number of devices (see docs/scaling.md).
A non-finite loss, gradient or parameter stops the run with an error naming
the iteration, before anything of that iteration is saved.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import signal
import sys
import time
from typing import Any, Dict, List, Optional

import jax
import numpy as np

import envs
from agents import checkpoint as ckpt
from agents import config as config_lib
from agents import evaluate as evaluate_lib
from agents import learner
from agents import parallel
from agents import run_lock
from agents import sharded_checkpoint as sharded_ckpt
from agents import opponents
from envs import openspiel_map
from agents import player as player_lib

PROGRAM = "batched-mcts agents.train"
RUN_FILE = "run.json"
CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.json"
PLOT_FILE = "learning_curve.png"


class RunError(Exception):
  """A user error (bad arguments, a directory we must not touch...)."""


# ---------------------------------------------------------------- run dirs
def _read_run_file(out_dir: str) -> Optional[Dict[str, Any]]:
  path = os.path.join(out_dir, RUN_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      info = json.load(f)
  except (OSError, ValueError) as e:
    raise RunError(f"{path} is unreadable ({e}); not touching {out_dir}")
  if not isinstance(info, dict) or info.get("program") != PROGRAM:
    return None
  return info


def prepare_new_run(out_dir: str, config: config_lib.Config) -> None:
  """Creates ``out_dir`` for a new run; refuses a directory holding
  anything (another run of ours, or foreign files)."""
  if os.path.exists(out_dir):
    if not os.path.isdir(out_dir):
      raise RunError(f"--out {out_dir} exists and is not a directory; "
                     "refusing to overwrite it")
    entries = sorted(os.listdir(out_dir))
    if entries:
      if _read_run_file(out_dir) is not None:
        raise RunError(
            f"--out {out_dir} already holds a training run; continue it "
            f"with --resume {out_dir}, or choose another --out")
      shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
      raise RunError(
          f"--out {out_dir} is not empty and is not one of our runs "
          f"(it holds: {shown}); refusing to overwrite it: choose a new or "
          "empty directory")
  os.makedirs(out_dir, exist_ok=True)
  write_run_file(out_dir, config)


def write_run_file(out_dir: str, config: config_lib.Config) -> None:
  info = dict(program=PROGRAM, config=config.to_dict(),
              created=datetime.datetime.now().isoformat(timespec="seconds"))
  ckpt.atomic_write_text(os.path.join(out_dir, RUN_FILE),
                         json.dumps(info, indent=2) + "\n")


def load_run_config(out_dir: str, what: str = "--resume") -> config_lib.Config:
  """The config of the run in ``out_dir``; errors name it as ``what``."""
  if not os.path.isdir(out_dir):
    raise RunError(f"{what} {out_dir}: no such directory")
  info = _read_run_file(out_dir)
  if info is None:
    raise RunError(f"{what} {out_dir}: not a training run of ours (no "
                   f"valid {RUN_FILE})")
  try:
    return config_lib.validate(config_lib.Config.from_dict(info["config"]))
  except (KeyError, TypeError, ValueError) as e:
    raise RunError(f"{os.path.join(out_dir, RUN_FILE)} has a bad config: {e}")


def _read_metrics(path: str) -> List[Dict[str, Any]]:
  rows = []
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          rows.append(json.loads(line))
        except ValueError:
          pass  # A line cut by a crash.
  return rows


# ---------------------------------------------------------------- training
def _metrics_to_json(metrics: Dict[str, Any]) -> Dict[str, Any]:
  out = {}
  for k, v in metrics.items():
    v = np.asarray(v).item()
    out[k] = None if isinstance(v, float) and not np.isfinite(v) else v
  return out


class _StopSignal:
  """Turns SIGTERM into a flag, so a run stops at an iteration boundary."""

  def __init__(self):
    self.stop = False

  def __enter__(self):
    try:
      self._old = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # Not in the main thread.
      self._old = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.stop = True

  def __exit__(self, *exc):
    if self._old is not None:
      signal.signal(signal.SIGTERM, self._old)


class TrainingDiverged(RunError):
  """A non-finite loss, gradient or parameter."""


def train(config: config_lib.Config, out_dir: str, *, resume: bool = False,
          max_minutes: Optional[float] = None,
          checkpoint_every_s: float = 120.0, progress: bool = True,
          final_eval: bool = True, quick_eval: bool = True,
          plot: bool = True, stop_at: Optional[int] = None,
          devices: Optional[int] = None, mcts_simulations: int = 1000,
          log=print) -> Dict[str, Any]:
  """Trains (or continues) the run in ``out_dir``; returns a summary dict
  (``params``, ``iteration``, ``final_eval``, ``metrics``...).

  ``devices``: the mesh size (default: as many of the devices as divide
  ``config.num_shards``). Every process of a multi-process run calls it;
  process 0 alone writes metrics, the plot and the evaluation.
  ``mcts_simulations``: the final evaluation also plays OpenSpiel's MCTSBot
  with this many simulations per move, for the games OpenSpiel has (0: not).
  ``stop_at``: stop (with a checkpoint) once this iteration is reached, as
  a killed run would (for tests and scripted interruptions).
  """
  config = config_lib.validate(config)
  if devices is None:
    devices = math.gcd(len(jax.devices()), config.num_shards)
  mesh = parallel.make_mesh(devices)
  parallel.check_devices(config, mesh.size)
  main_process = parallel.is_main_process()
  ckpt_dir = os.path.join(out_dir, CHECKPOINT_DIR)
  metrics_path = os.path.join(out_dir, METRICS_FILE)
  elapsed_before = 0.0
  if resume and sharded_ckpt.latest_step(ckpt_dir) is not None:
    target = sharded_ckpt.abstract_target(
        jax.eval_shape(lambda: learner.sharded_init_state(config, mesh)),
        learner.state_shardings(config, mesh))
    state, meta = sharded_ckpt.restore(ckpt_dir, target)  # Raises if bad.
    elapsed_before = float(meta.get("elapsed_s", 0.0))
    log(f"Resuming {out_dir} at iteration {meta['iteration']} on "
        f"{mesh.size} device(s)")
  else:
    if resume:
      log(f"{out_dir} has no checkpoint yet: starting from iteration 0")
    state = learner.sharded_init_state(config, mesh)
  it = int(parallel.fetch(state.iteration))
  if resume and main_process:
    # Drop metric lines written after the checkpoint (they will be redone).
    rows = [r for r in _read_metrics(metrics_path)
            if r.get("iteration", 0) <= it]
    ckpt.atomic_write_text(metrics_path,
                           "".join(json.dumps(r) + "\n" for r in rows))

  train_step = learner.jitted_train_step(config, mesh)
  evaluator = None
  eval_key = jax.random.PRNGKey(config.seed + 1_000_003)

  def run_eval(params, iteration, games):
    nonlocal evaluator
    if evaluator is None or evaluator.num_games != games:
      evaluator = evaluate_lib.cached_evaluator(config, games)
    return evaluator(parallel.fetch(params),
                     jax.random.fold_in(eval_key, iteration))

  def save(state, elapsed):
    sharded_ckpt.save(ckpt_dir, state, dict(
        iteration=it, elapsed_s=elapsed, config=config.to_dict(),
        devices=mesh.size))

  steps_per_iter = config.selfplay_steps * config.num_envs
  bar = None
  if progress and main_process:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    bar = tqdm(total=config.steps, initial=it,
               desc=f"{config.env} {config.algo}", unit="it",
               dynamic_ncols=True)
  start = time.time()
  last_ckpt = start
  all_rows = _read_metrics(metrics_path) if resume and main_process else []
  stopped_early = False
  interrupted = False
  metrics_file = open(metrics_path, "a") if main_process else None
  with _StopSignal() as stop:
    try:
      while it < config.steps:
        new_state, metrics = train_step(state)
        metrics = parallel.fetch(metrics)
        if not metrics.pop("finite"):
          raise TrainingDiverged(
              f"iteration {it + 1}: non-finite loss, gradient or parameter "
              f"(loss {float(metrics['loss'])}, gradient norm "
              f"{float(metrics['grad_norm'])}); stopped without saving it: "
              f"the last checkpoint in {ckpt_dir} is the last good state")
        state = new_state
        it += 1
        row = _metrics_to_json(metrics)
        now = time.time()
        row.update(iteration=it, env_steps=it * steps_per_iter,
                   updates=it * config.updates_per_iter,
                   time_s=round(elapsed_before + now - start, 2))
        eps = row.pop("episodes")
        ret = row.pop("return_sum")
        row["episodes"] = eps
        row["mean_return"] = ret / eps if eps else None
        if main_process:
          if quick_eval and (it % config.eval_every == 0):
            row.update(run_eval(state.params, it, config.eval_games))
          metrics_file.write(json.dumps(row) + "\n")
          metrics_file.flush()
          all_rows.append(row)
        if bar is not None:
          post = {"loss": row.get("loss"), "ret": row.get("mean_return")}
          for k in ("vs_perfect_second_loss", "vs_random_first_win",
                    "catch_rate"):
            last = next((r[k] for r in reversed(all_rows) if k in r), None)
            if last is not None:
              post[k] = last
          bar.set_postfix({k: f"{v:.3f}" for k, v in post.items()
                           if v is not None}, refresh=False)
          bar.update(1)
        # Decided by process 0's clock and flags, so that every process
        # stops (and saves) at the same iteration.
        out_of_time = (max_minutes is not None
                       and now - start > 60.0 * max_minutes)
        stop_now, save_now = parallel.agree((
            stop.stop or out_of_time or (stop_at is not None
                                         and it >= stop_at),
            now - last_ckpt > checkpoint_every_s))
        if stop_now:
          stopped_early = it < config.steps
          break
        if save_now:
          save(state, elapsed_before + now - start)
          last_ckpt = time.time()
    except KeyboardInterrupt:
      # `state` is the last completed iteration: keep it.
      interrupted = True
    finally:
      if bar is not None:
        bar.close()
      if metrics_file is not None:
        metrics_file.close()
  elapsed = elapsed_before + time.time() - start
  save(state, elapsed)
  if interrupted:
    raise KeyboardInterrupt
  summary = dict(params=parallel.fetch(state.params), iteration=it,
                 elapsed_s=elapsed, metrics=all_rows,
                 stopped_early=stopped_early, state=state)
  if final_eval and main_process:
    results = run_eval(state.params, 10**9, config.final_eval_games)
    if mcts_simulations and openspiel_map.has_game(config.env):
      log(f"Final evaluation against OpenSpiel's MCTSBot({mcts_simulations})"
          f" at {config.env}")
      results.update(opponents.mcts_evaluation(
          player_lib.Player(config, summary["params"]),
          config.final_eval_games, mcts_simulations, seed=config.seed))
    results.update(iteration=it, elapsed_s=elapsed,
                   games_per_side=config.final_eval_games)
    ckpt.atomic_write_text(os.path.join(out_dir, EVAL_FILE),
                           json.dumps(results, indent=2) + "\n")
    summary["final_eval"] = results
  if plot and main_process:
    plot_learning_curve(all_rows, os.path.join(out_dir, PLOT_FILE),
                        title=f"{config.env} {config.algo} ({config.policy})")
  return summary


def plot_learning_curve(rows: List[Dict[str, Any]], path: str,
                        title: str = "") -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  def series(key):
    pts = [(r["iteration"], r[key]) for r in rows
           if r.get(key) is not None]
    return ([p[0] for p in pts], [p[1] for p in pts]) if pts else None
  for key in ("loss", "policy_loss", "value_loss", "reward_loss", "q_loss",
              "chance_loss", "commitment_loss"):
    s = series(key)
    if s:
      axes[0].plot(*s, label=key)
  axes[0].set_title("losses")
  s = series("mean_return")
  if s:
    axes[1].plot(*s, label="self-play return (player 0)")
  axes[1].set_title("self-play")
  for key in ("catch_rate", "vs_random_first_win", "vs_random_second_win",
              "vs_perfect_first_loss", "vs_perfect_second_loss"):
    s = series(key)
    if s:
      axes[2].plot(*s, marker="o", label=key)
  axes[2].set_title("evaluation")
  for ax in axes:
    ax.set_xlabel("iteration")
    if ax.lines:
      ax.legend(fontsize=8)
  fig.suptitle(title)
  fig.tight_layout()
  tmp = path + ".tmp.png"
  fig.savefig(tmp)
  plt.close(fig)
  os.replace(tmp, path)


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


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="python -m agents.train",
      description="Train MuZero / AlphaZero with batched MCTS. With no "
      "arguments: the demo (MuZero with a learned model and the Gumbel "
      "policy on tic-tac-toe, then an evaluation against random and "
      "perfect players).")
  p.add_argument("--env", help="tictactoe | connect4 | catch | pgx:<id> "
                 "(default tictactoe)")
  p.add_argument("--algo", choices=config_lib.ALGOS,
                 help="muzero (learned model) or alphazero (true env in "
                 "the search); default per game")
  p.add_argument("--policy", choices=config_lib.POLICIES,
                 help="gumbel (default) or muzero (pUCT)")
  p.add_argument("--simulations", type=int, help="simulations per search")
  p.add_argument("--seed", type=int)
  p.add_argument("--steps", type=int,
                 help="training iterations in total (each: self-play of "
                 "--envs games for some steps, then some updates)")
  p.add_argument("--envs", type=int, help="parallel self-play games")
  p.add_argument("--batch-size", type=int)
  p.add_argument("--updates-per-iter", type=int,
                 help="gradient steps per iteration (each on --batch-size "
                 "windows)")
  p.add_argument("--replay-capacity", type=int,
                 help="time steps kept per self-play environment")
  p.add_argument("--lr", type=float, help="learning rate")
  p.add_argument("--unroll-steps", type=int, help="K (MuZero)")
  p.add_argument("--td-steps", type=int,
                 help="n for value targets (default: to the episode end)")
  p.add_argument("--reanalyse", type=float, metavar="F",
                 help="MuZero Reanalyse: fraction F in [0, 1] of every "
                 "batch gets fresh policy and value targets from new "
                 "searches with the current parameters (muzero only; "
                 "default 0: off; see docs/agents.md)")
  p.add_argument("--code-usage-weight", type=float, metavar="W",
                 help="Stochastic MuZero: weight of the term that asks the "
                 "chance encoder to use many codes over a batch (default "
                 "per game; see docs/stochastic_muzero.md)")
  p.add_argument("--eval-every", type=int, help="iterations between quick "
                 "evaluations")
  p.add_argument("--eval-games", type=int, help="games per side in quick "
                 "evaluations")
  p.add_argument("--final-eval-games", type=int,
                 help="games per side in the final evaluation")
  p.add_argument("--eval-mcts-sims", type=int, default=1000,
                 metavar="N", help="the final evaluation also plays "
                 "OpenSpiel's MCTSBot with N simulations per move "
                 "(tictactoe, connect4; needs open_spiel; 0: not; default "
                 "1000)")
  p.add_argument("--out", help="run directory (new or empty); default "
                 "runs/<env>-<algo>-<time>")
  p.add_argument("--resume", metavar="DIR",
                 help="continue the run in DIR from its last checkpoint")
  p.add_argument("--max-minutes", type=float,
                 help="stop (with a checkpoint) after this much training")
  p.add_argument("--checkpoint-every", type=float, default=120.0,
                 metavar="SECONDS", help="seconds between checkpoints")
  p.add_argument("--no-progress", action="store_true",
                 help="no progress bar")
  g = p.add_argument_group(
      "devices and hosts", "Data-parallel training over a mesh of devices; "
      "with several processes, every process runs the same command. See "
      "docs/scaling.md.")
  g.add_argument("--devices", type=int,
                 help="devices to use (default: all devices of all "
                 "processes; a new run is cut into that many shards)")
  g.add_argument("--shards", type=int,
                 help="shards of a new run (default --devices): a run "
                 "gives the same results on any device count dividing it")
  g.add_argument("--coordinator", metavar="HOST:PORT",
                 help="address of process 0 (or JAX_COORDINATOR_ADDRESS; "
                 "SLURM, Open MPI and Cloud TPU are detected by JAX)")
  g.add_argument("--num-processes", type=int,
                 help="processes in the run (or JAX_NUM_PROCESSES)")
  g.add_argument("--process-id", type=int,
                 help="this process's index (or JAX_PROCESS_ID)")
  g.add_argument("--timeout", type=int, default=parallel.DEFAULT_TIMEOUT_S,
                 metavar="SECONDS", help="a peer that does not arrive, or "
                 "dies, stops the others with an error after about this "
                 "long (default %(default)s)")
  return p


def config_from_args(args, shards: int = 1) -> config_lib.Config:
  env_name = args.env or "tictactoe"
  try:
    env = envs.make(env_name)
  except (ValueError, ImportError) as e:
    raise RunError(str(e))
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
    learner.window_length(config, env)
  except ValueError as e:
    raise RunError(str(e))
  return config


def main(argv=None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  lock = None
  try:
    parallel.initialize(args.coordinator, args.num_processes,
                        args.process_id, args.timeout)
    main_process = parallel.is_main_process()
    devices = len(parallel.make_mesh(args.devices).devices)
    if args.eval_mcts_sims < 0:
      raise RunError(f"--eval-mcts-sims must be >= 0, got "
                     f"{args.eval_mcts_sims}")
    if args.resume:
      if args.out and os.path.abspath(args.out) != os.path.abspath(
          args.resume):
        raise RunError("give either --resume DIR or --out DIR, not both")
      changed = [f"--{flag.replace('_', '-')}" for flag in _RUN_FLAGS
                 if getattr(args, flag) is not None]
      if changed:
        raise RunError(f"{', '.join(changed)} cannot change when resuming "
                       "(the run's settings are in its run.json); only "
                       "--steps, --max-minutes, --final-eval-games, "
                       "--eval-mcts-sims, --checkpoint-every and the devices "
                       "and hosts can")
      out_dir = args.resume
      config = load_run_config(out_dir)
      if main_process:
        lock = run_lock.RunLock(out_dir)
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
      if updates:
        try:
          config = config_lib.validate(config_lib.Config.from_dict(
              dict(config.to_dict(), **updates)))
        except ValueError as e:
          raise RunError(str(e))
        if main_process:
          write_run_file(out_dir, config)
    else:
      config = config_from_args(args, shards=args.shards or devices)
      if jax.process_count() > 1 and not args.out:
        raise RunError("with several processes, give --out (the same "
                       "directory, on a file system all of them share)")
      out_dir = args.out or os.path.join(
          "runs", f"{config.env.replace(':', '_')}-{config.algo}-"
          f"{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}")
      if main_process:
        prepare_new_run(out_dir, config)
        lock = run_lock.RunLock(out_dir)
    parallel.barrier("run directory ready")
    print(f"Run directory: {out_dir}")
    print("Config: " + json.dumps(config.to_dict()))
    summary = train(config, out_dir, resume=bool(args.resume),
                    max_minutes=args.max_minutes,
                    checkpoint_every_s=args.checkpoint_every,
                    progress=not args.no_progress, devices=devices,
                    mcts_simulations=args.eval_mcts_sims)
  except (RunError, ckpt.CheckpointError, parallel.ParallelError,
          run_lock.RunLockedError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("interrupted: the last checkpoint is kept; continue with "
          "--resume", file=sys.stderr)
    return 130
  finally:
    if lock is not None:
      lock.release()
  print(f"Trained {summary['iteration']} iterations in "
        f"{summary['elapsed_s']:.0f} s"
        + (" (stopped early)" if summary["stopped_early"] else ""))
  if "final_eval" in summary:
    fe = summary["final_eval"]
    print(f"Evaluation ({fe['games_per_side']} games per side, greedy "
          "search):")
    print(evaluate_lib.format_report(fe))
  print(f"Metrics: {os.path.join(out_dir, METRICS_FILE)}; plot: "
        f"{os.path.join(out_dir, PLOT_FILE)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
