"""The training loop: the jitted iteration run, logged and checkpointed in
a run directory (:mod:`agents.runs`).

``--resume`` continues exactly where the last checkpoint left off: training
N iterations straight or N/2, stop, resume to N gives the same parameters
bit for bit (everything random is derived from the state); it also
continues on another number of devices (see docs/scaling.md). A non-finite
loss, gradient or parameter stops the run with an error naming the
iteration, before anything of that iteration is saved. Every process of a
multi-process run runs the loop; process 0 alone writes metrics, the
evaluation and the plot.
"""
from __future__ import annotations

import json
import os
import signal
import time
from typing import Any, Callable, Dict, Optional

import jax

from agents.runs import checkpoints
from agents.runs import metrics as metrics_lib
from agents.runs import processes
from agents.runs.plot import plot_learning_curve
from agents.runs.run_dir import (CHECKPOINT_DIR, EVAL_FILE, METRICS_FILE,
                                 PLOT_FILE, RunError, atomic_write_text)
from agents.training.parallel import check_devices
from agents.training.state import sharded_init_state, state_shardings
from agents.training.step import jitted_train_step


class TrainingDiverged(RunError):
  """A non-finite loss, gradient or parameter."""


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


def _start_state(agent, mesh, out_dir: str, resume: bool, log):
  """``(state, seconds trained before)``: the latest checkpoint's state
  when resuming a run that has one, else the initial state."""
  ckpt_dir = os.path.join(out_dir, CHECKPOINT_DIR)
  if resume and checkpoints.latest_step(ckpt_dir) is not None:
    target = checkpoints.abstract_target(
        jax.eval_shape(lambda: sharded_init_state(agent, mesh)),
        state_shardings(agent, mesh))
    state, meta = checkpoints.restore(ckpt_dir, target)  # Raises if bad.
    log(f"Resuming {out_dir} at iteration {meta['iteration']} on "
        f"{mesh.size} device(s)")
    return state, float(meta.get("elapsed_s", 0.0))
  if resume:
    log(f"{out_dir} has no checkpoint yet: starting from iteration 0")
  return sharded_init_state(agent, mesh), 0.0


def _metrics_row(metrics, it: int, config, time_s: float) -> Dict[str, Any]:
  """The metrics.jsonl row of iteration ``it`` from the step's metrics."""
  row = metrics_lib.to_json(metrics)
  row.update(iteration=it,
             env_steps=it * config.selfplay_steps * config.num_envs,
             updates=it * config.updates_per_iter, time_s=round(time_s, 2))
  eps = row.pop("episodes")
  ret = row.pop("return_sum")
  row["episodes"] = eps
  row["mean_return"] = ret / eps if eps else None
  return row


def _progress_bar(config, it: int):
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm(total=config.steps, initial=it,
              desc=f"{config.env} {config.algo}", unit="it",
              dynamic_ncols=True)


def _show(bar, row, all_rows) -> None:
  """The bar's step, with the last loss, return and evaluation rates."""
  post = {"loss": row.get("loss"), "ret": row.get("mean_return")}
  for k in ("vs_perfect_second_loss", "vs_random_first_win", "catch_rate"):
    last = next((r[k] for r in reversed(all_rows) if k in r), None)
    if last is not None:
      post[k] = last
  bar.set_postfix({k: f"{v:.3f}" for k, v in post.items() if v is not None},
                  refresh=False)
  bar.update(1)


def train(agent, out_dir: str, mesh, *, resume: bool = False,
          max_minutes: Optional[float] = None,
          checkpoint_every_s: float = 120.0, progress: bool = True,
          quick_evaluate: Optional[Callable[[Any, int], Dict]] = None,
          final_evaluate: Optional[Callable[[Any], Dict]] = None,
          plot: bool = True, stop_at: Optional[int] = None,
          log=print) -> Dict[str, Any]:
  """Trains (or continues) ``agent``'s run in ``out_dir`` on ``mesh``;
  returns a summary dict (``params``, ``iteration``, ``final_eval``,
  ``metrics``, ``state``...).

  ``quick_evaluate(params, iteration)``: rates added to the metrics row
  every ``eval_every`` iterations; ``final_evaluate(params)``: the rates
  of eval.json (None: not evaluated). ``stop_at``: stop (with a
  checkpoint) once this iteration is reached, as a killed run would (for
  tests and scripted interruptions).
  """
  config = agent.config
  check_devices(config, mesh.size)
  main_process = processes.is_main_process()
  ckpt_dir = os.path.join(out_dir, CHECKPOINT_DIR)
  metrics_path = os.path.join(out_dir, METRICS_FILE)
  state, elapsed_before = _start_state(agent, mesh, out_dir, resume, log)
  it = int(processes.fetch(state.iteration))
  all_rows = []
  if resume and main_process:
    all_rows = metrics_lib.keep_until(metrics_path, it)
  train_step = jitted_train_step(agent, mesh)

  def save(state, elapsed):
    checkpoints.save(ckpt_dir, state, dict(
        iteration=it, elapsed_s=elapsed, config=config.to_dict(),
        devices=mesh.size))

  bar = _progress_bar(config, it) if progress and main_process else None
  start = time.time()
  last_ckpt = start
  stopped_early = False
  interrupted = False
  metrics_file = open(metrics_path, "a") if main_process else None
  with _StopSignal() as stop:
    try:
      while it < config.steps:
        new_state, metrics = train_step(state)
        metrics = processes.fetch(metrics)
        if not metrics.pop("finite"):
          raise TrainingDiverged(
              f"iteration {it + 1}: non-finite loss, gradient or parameter "
              f"(loss {float(metrics['loss'])}, gradient norm "
              f"{float(metrics['grad_norm'])}); stopped without saving it: "
              f"the last checkpoint in {ckpt_dir} is the last good state")
        state = new_state
        it += 1
        now = time.time()
        row = _metrics_row(metrics, it, config, elapsed_before + now - start)
        if main_process:
          if quick_evaluate is not None and it % config.eval_every == 0:
            row.update(quick_evaluate(processes.fetch(state.params), it))
          metrics_file.write(json.dumps(row) + "\n")
          metrics_file.flush()
          all_rows.append(row)
        if bar is not None:
          _show(bar, row, all_rows)
        # Decided by process 0's clock and flags, so that every process
        # stops (and saves) at the same iteration.
        out_of_time = (max_minutes is not None
                       and now - start > 60.0 * max_minutes)
        stop_now, save_now = processes.agree((
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
  summary = dict(params=processes.fetch(state.params), iteration=it,
                 elapsed_s=elapsed, metrics=all_rows,
                 stopped_early=stopped_early, state=state)
  if final_evaluate is not None and main_process:
    results = final_evaluate(summary["params"])
    results.update(iteration=it, elapsed_s=elapsed,
                   games_per_side=config.final_eval_games)
    atomic_write_text(os.path.join(out_dir, EVAL_FILE),
                      json.dumps(results, indent=2) + "\n")
    summary["final_eval"] = results
  if plot and main_process:
    plot_learning_curve(all_rows, os.path.join(out_dir, PLOT_FILE),
                        title=f"{config.env} {config.algo} ({config.policy})")
  return summary
