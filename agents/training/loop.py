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
import time
from typing import Any, Callable, Dict, Optional

import jax

from agents.runs import checkpoints
from agents.runs import metrics as metrics_lib
from agents.runs import processes
from agents.runs.console import progress_bar, timed
from agents.runs.plot import plot_learning_curve
from agents.runs.run_dir import (CHECKPOINT_DIR, EVAL_FILE, METRICS_FILE,
                                 PLOT_FILE, RunError, atomic_write_text)
from agents.runs.signals import RunStopped, StopSignals
from agents.training.parallel import check_devices
from agents.training.state import sharded_init_state, state_shardings
from agents.training.step import jitted_train_step


class TrainingDiverged(RunError):
  """A non-finite loss, gradient or parameter."""


def _start_state(agent, mesh, out_dir: str, resume: bool, log):
  """``(state, wall seconds trained before, CPU seconds before)``: the
  latest checkpoint's state when resuming a run that has one, else the
  initial state."""
  ckpt_dir = os.path.join(out_dir, CHECKPOINT_DIR)
  if resume and checkpoints.latest_step(ckpt_dir) is not None:
    target = checkpoints.abstract_target(
        jax.eval_shape(lambda: sharded_init_state(agent, mesh)),
        state_shardings(agent, mesh))
    state, meta = checkpoints.restore(ckpt_dir, target)  # Raises if bad.
    log(f"Resuming {out_dir} at iteration {meta['iteration']} on "
        f"{mesh.size} device(s)")
    return (state, float(meta.get("elapsed_s", 0.0)),
            float(meta.get("cpu_s", 0.0)))
  if resume:
    log(f"{out_dir} has no checkpoint yet: starting from iteration 0")
  return sharded_init_state(agent, mesh), 0.0, 0.0


def _metrics_row(metrics, it: int, config, time_s: float,
                 cpu_s: float) -> Dict[str, Any]:
  """The metrics.jsonl row of iteration ``it`` from the step's metrics:
  ``time_s`` the wall-clock seconds of training so far, ``cpu_s`` the CPU
  seconds of this process (all its threads; for a process alone on one
  core, its wall-clock time on a machine of its own)."""
  row = metrics_lib.to_json(metrics)
  row.update(iteration=it,
             env_steps=it * config.selfplay_steps * config.num_envs,
             updates=it * config.updates_per_iter, time_s=round(time_s, 2),
             cpu_s=round(cpu_s, 2))
  eps = row.pop("episodes")
  ret = row.pop("return_sum")
  row["episodes"] = eps
  row["mean_return"] = ret / eps if eps else None
  return row


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


def _compile(train_step, state, config, log) -> None:
  """Compiles the iteration for ``state`` ahead of the first call (jax keeps
  it for the calls), saying what it compiles and how long it took."""
  what = (f"the training iteration (self-play: {config.num_envs} games x "
          f"{config.selfplay_steps} moves, {config.num_simulations} "
          f"simulations per move; {config.updates_per_iter} updates of "
          f"{config.batch_size})")
  with timed(log, f"Compiling {what}", "Compiled the training iteration"):
    train_step.lower(state).compile()


def train(agent, out_dir: str, mesh, *, resume: bool = False,
          max_minutes: Optional[float] = None,
          checkpoint_every_s: float = 120.0, progress: bool = True,
          quick_evaluate: Optional[Callable[[Any, int], Dict]] = None,
          final_evaluate: Optional[Callable[[Any], Dict]] = None,
          prepare_evaluation: Optional[Callable[[Any, int], None]] = None,
          plot: bool = True, stop_at: Optional[int] = None,
          log=print) -> Dict[str, Any]:
  """Trains (or continues) ``agent``'s run in ``out_dir`` on ``mesh``;
  returns a summary dict (``params``, ``iteration``, ``final_eval``,
  ``metrics``, ``state``...).

  ``quick_evaluate(params, iteration)``: rates added to the metrics row
  every ``eval_every`` iterations; ``final_evaluate(params)``: the rates
  of eval.json (None: not evaluated); ``prepare_evaluation(params,
  iteration)``: called by process 0 before the first iteration (e.g. to
  compile the quick evaluation before the progress bar starts).
  ``stop_at``: stop (with a checkpoint) once this iteration is reached, as
  a killed run would (for tests and scripted interruptions).

  SIGTERM or SIGINT (:mod:`agents.runs.signals`) stops every process at
  the end of the same iteration: the state is saved, then
  :class:`~agents.runs.signals.RunStopped` is raised (no final evaluation,
  no plot); once training is over it is raised at once. A second SIGINT
  aborts (``KeyboardInterrupt``) keeping the last checkpoint on disk.
  """
  config = agent.config
  check_devices(config, mesh.size)
  main_process = processes.is_main_process()
  ckpt_dir = os.path.join(out_dir, CHECKPOINT_DIR)
  metrics_path = os.path.join(out_dir, METRICS_FILE)
  with StopSignals() as signals:
    state, elapsed_before, cpu_before = _start_state(agent, mesh, out_dir,
                                                     resume, log)
    it = int(processes.fetch(state.iteration))
    all_rows = []
    if resume and main_process:
      all_rows = metrics_lib.keep_until(metrics_path, it)
    train_step = jitted_train_step(agent, mesh)
    signum = 0
    if it < config.steps:
      _compile(train_step, state, config, log)
      if prepare_evaluation is not None and main_process:
        prepare_evaluation(processes.fetch(state.params), it)
      # A signal during the compilation stops before the first iteration.
      _, signum = processes.agree((), signals.signum)

    def cpu_seconds():
      return cpu_before + time.process_time() - cpu_start

    def save(state, elapsed):
      checkpoints.save(ckpt_dir, state, dict(
          iteration=it, elapsed_s=elapsed, cpu_s=cpu_seconds(),
          config=config.to_dict(), devices=mesh.size))

    bar = None
    if progress and main_process:
      bar = progress_bar(config.steps, f"{config.env} {config.algo}", "it",
                         initial=it)
    start = time.time()
    cpu_start = time.process_time()
    last_ckpt = start
    stopped_early = False
    metrics_file = open(metrics_path, "a") if main_process else None
    try:
      while it < config.steps and not signum:
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
        row = _metrics_row(metrics, it, config, elapsed_before + now - start,
                           cpu_seconds())
        if main_process:
          if quick_evaluate is not None and it % config.eval_every == 0:
            row.update(quick_evaluate(processes.fetch(state.params), it))
          metrics_file.write(json.dumps(row) + "\n")
          metrics_file.flush()
          all_rows.append(row)
        if bar is not None:
          _show(bar, row, all_rows)
        # Time and checkpoints by process 0's clock, a signal from any
        # process: every process stops (and saves) at the same iteration.
        out_of_time = (max_minutes is not None
                       and now - start > 60.0 * max_minutes)
        (stop_now, save_now), signum = processes.agree((
            out_of_time or (stop_at is not None and it >= stop_at),
            now - last_ckpt > checkpoint_every_s), signals.signum)
        if stop_now or signum:
          stopped_early = it < config.steps
          break
        if save_now:
          save(state, elapsed_before + now - start)
          last_ckpt = time.time()
    finally:
      # A KeyboardInterrupt (a second Ctrl-C) or an error leaves the last
      # checkpoint on disk as it is.
      if bar is not None:
        bar.close()
      if metrics_file is not None:
        metrics_file.close()
    elapsed = elapsed_before + time.time() - start
    save(state, elapsed)
    if signum:
      raise RunStopped(signum, it)
    signals.at_once(it)
    log(f"Trained {it} iterations in {elapsed:.0f} s"
        + (" (stopped early)" if stopped_early else ""))
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
                          title=f"{config.env} {config.algo} "
                          f"({config.policy})")
  return summary
