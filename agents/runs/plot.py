"""Learning curves of runs' metrics rows (:mod:`agents.runs.metrics`).

``learning_curve.png`` of a run: losses and self-play return by iteration,
its evaluations by iteration, and its strength against wall-clock minutes.
``python -m agents.runs.plot RUN [RUN ...] --out FILE.png`` draws the
strength of several runs against minutes in one figure (the curves of
docs/measurements/):

    python -m agents.runs.plot runs/c4-a runs/c4-b --out curves.png
    python -m agents.runs.plot runs/2048-s0 --clock cpu --out 2048.png

``--clock cpu`` reads the training process's CPU seconds instead of the
wall clock: for a process alone on one core they are its time on a machine
of its own, whatever else shared the machine.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from agents.runs.metrics import read_metrics
from agents.runs.run_dir import METRICS_FILE

LOSSES = ("loss", "policy_loss", "value_loss", "reward_loss", "q_loss",
          "chance_loss", "commitment_loss", "consistency_loss")
# Strength: the share of solved positions where the move keeps the solved
# outcome (Connect Four), wins against random, losses against perfect
# play, the catch rate, and a single-player score over a random player's.
STRENGTH = ("solver_accuracy", "vs_random_first_win", "vs_random_second_win",
            "vs_perfect_first_loss", "vs_perfect_second_loss", "catch_rate",
            "score_over_random")
CLOCKS = {"wall": ("time_s", "wall-clock minutes of training"),
          "cpu": ("cpu_s", "CPU minutes of the training process")}

Series = Tuple[List[float], List[float]]


def with_derived(row: Dict[str, Any]) -> Dict[str, Any]:
  """``row`` with ``score_over_random``: the evaluation's mean return over
  a uniformly random player's on as many games (single-player games)."""
  score, baseline = row.get("eval_return"), row.get("random_return")
  if score is None or not baseline:
    return row
  return dict(row, score_over_random=score / baseline)


def series(rows: Sequence[Dict[str, Any]], key: str,
           x: str = "iteration", scale: float = 1.0) -> Optional[Series]:
  """``(xs, ys)`` of the rows that have ``key`` (and ``x``), ``x`` divided
  by ``scale``; None if none has."""
  pts = [(r[x] / scale, r[key]) for r in map(with_derived, rows)
         if r.get(key) is not None and r.get(x) is not None]
  return ([p[0] for p in pts], [p[1] for p in pts]) if pts else None


def _finish(fig, path: str, title: str) -> None:
  """Titles ``fig`` and writes it to the PNG at ``path`` atomically."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig.suptitle(title)
  fig.tight_layout()
  tmp = path + ".tmp.png"
  fig.savefig(tmp)
  plt.close(fig)
  os.replace(tmp, path)


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def plot_learning_curve(rows: List[Dict[str, Any]], path: str,
                        title: str = "") -> None:
  """Draws the metrics ``rows`` of one run into the PNG at ``path``."""
  plt = _pyplot()
  fig, axes = plt.subplots(1, 4, figsize=(20, 4))
  for key in LOSSES:
    s = series(rows, key)
    if s:
      axes[0].plot(*s, label=key)
  axes[0].set_title("losses")
  s = series(rows, "mean_return")
  if s:
    axes[1].plot(*s, label="self-play return (player 0)")
  axes[1].set_title("self-play")
  for key in STRENGTH:
    s = series(rows, key)
    if s:
      axes[2].plot(*s, marker="o", label=key)
    s = series(rows, key, x="time_s", scale=60.0)
    if s:
      axes[3].plot(*s, marker="o", label=key)
  axes[2].set_title("evaluation")
  axes[3].set_title("strength against time")
  for ax in axes[:3]:
    ax.set_xlabel("iteration")
  axes[3].set_xlabel(CLOCKS["wall"][1])
  for ax in axes:
    if ax.lines:
      ax.legend(fontsize=8)
  _finish(fig, path, title)


def plot_runs(runs: Dict[str, List[Dict[str, Any]]], path: str,
              clock: str = "wall", keys: Sequence[str] = STRENGTH,
              title: str = "") -> List[str]:
  """Draws, for each of ``keys`` that some run has, one panel of every
  run's ``key`` against minutes of ``clock``; ``runs`` maps a label to its
  metrics rows. Returns the keys drawn."""
  x, xlabel = CLOCKS[clock]
  drawn = [k for k in keys
           if any(series(rows, k, x, 60.0) for rows in runs.values())]
  if not drawn:
    raise ValueError(f"no run has any of {', '.join(keys)} with {x}")
  plt = _pyplot()
  fig, axes = plt.subplots(1, len(drawn), figsize=(5 * len(drawn), 4),
                           squeeze=False)
  for ax, key in zip(axes[0], drawn):
    for label, rows in runs.items():
      s = series(rows, key, x, 60.0)
      if s:
        ax.plot(*s, marker="o", markersize=3, label=label)
    ax.set_title(key)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8)
  _finish(fig, path, title)
  return drawn


def main(argv=None) -> int:
  p = argparse.ArgumentParser(
      prog="python -m agents.runs.plot", allow_abbrev=False,
      description="Strength against minutes of training, for one run or "
      "several in one figure.")
  p.add_argument("runs", nargs="+", metavar="RUN",
                 help="run directories (their metrics.jsonl)")
  p.add_argument("--out", required=True, help="the PNG to write")
  p.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                 help="wall: wall-clock seconds of training; cpu: the "
                 "training process's CPU seconds (default %(default)s)")
  p.add_argument("--metric", action="append", choices=STRENGTH,
                 help="the strength measures to draw (repeatable; default: "
                 "every one a run has)")
  p.add_argument("--title", default="", help="the figure's title")
  args = p.parse_args(argv)
  runs = {}
  for run in args.runs:
    rows = read_metrics(os.path.join(run, METRICS_FILE))
    if not rows:
      p.error(f"{run} has no {METRICS_FILE} rows")
    runs[os.path.basename(os.path.normpath(run))] = rows
  try:
    drawn = plot_runs(runs, args.out, args.clock, args.metric or STRENGTH,
                      args.title)
  except ValueError as e:
    p.error(str(e))
  print(f"Wrote {args.out}: {', '.join(drawn)} of {len(runs)} run(s) "
        f"against {CLOCKS[args.clock][1]}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
