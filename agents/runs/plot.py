"""``learning_curve.png``: losses, self-play return and evaluations of a
run's metrics rows."""
from __future__ import annotations

import os
from typing import Any, Dict, List


def plot_learning_curve(rows: List[Dict[str, Any]], path: str,
                        title: str = "") -> None:
  """Draws the metrics ``rows`` into the PNG at ``path`` (atomically)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  def series(key):
    pts = [(r["iteration"], r[key]) for r in rows
           if r.get(key) is not None]
    return ([p[0] for p in pts], [p[1] for p in pts]) if pts else None
  for key in ("loss", "policy_loss", "value_loss", "reward_loss", "q_loss",
              "chance_loss", "commitment_loss", "consistency_loss"):
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
