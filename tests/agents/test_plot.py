"""Learning curves (agents/runs/plot.py): the series it draws, the run's
figure, and the command that puts several runs against minutes."""
import json

import pytest

from agents.runs import plot
from agents.runs.run_dir import METRICS_FILE


def _rows(n=4, score=None):
  rows = []
  for i in range(1, n + 1):
    row = dict(iteration=10 * i, time_s=60.0 * i, cpu_s=30.0 * i,
               loss=1.0 / i, mean_return=float(i))
    if score is not None:
      row.update(eval_return=score * i, random_return=score)
    if i % 2 == 0:
      row.update(vs_random_first_win=0.5 + 0.1 * i, solver_accuracy=0.8)
    rows.append(row)
  return rows


def test_series_reads_the_rows_that_have_the_key():
  rows = _rows()
  assert plot.series(rows, "vs_random_first_win") == ([20, 40], [0.7, 0.9])
  assert plot.series(rows, "solver_accuracy", "time_s", 60.0) == (
      [2.0, 4.0], [0.8, 0.8])
  assert plot.series(rows, "solver_accuracy", "cpu_s", 60.0) == (
      [1.0, 2.0], [0.8, 0.8])
  assert plot.series(rows, "catch_rate") is None
  # A single-player score over the random player's, where both are known.
  assert plot.series(_rows(2, score=500.0), "score_over_random") == (
      [10, 20], [1.0, 2.0])
  assert plot.series([dict(iteration=1, eval_return=5.0,
                           random_return=0.0)], "score_over_random") is None


def _is_png(path):
  with open(path, "rb") as f:
    return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_run_figure_and_the_comparison(tmp_path):
  out = tmp_path / "curve.png"
  plot.plot_learning_curve(_rows(), str(out), title="t")
  assert _is_png(out)
  both = tmp_path / "both.png"
  drawn = plot.plot_runs({"a": _rows(), "b": _rows(3, score=10.0)},
                         str(both), clock="cpu")
  assert drawn == ["solver_accuracy", "vs_random_first_win",
                   "score_over_random"]
  assert _is_png(both)
  with pytest.raises(ValueError, match="no run has any of catch_rate"):
    plot.plot_runs({"a": _rows()}, str(both), keys=["catch_rate"])


def test_the_command(tmp_path, capsys):
  runs = []
  for name, score in (("s0", 100.0), ("s1", 200.0)):
    run = tmp_path / name
    run.mkdir()
    (run / METRICS_FILE).write_text(
        "".join(json.dumps(r) + "\n" for r in _rows(score=score)))
    runs.append(str(run))
  out = tmp_path / "2048.png"
  assert plot.main(runs + ["--out", str(out), "--clock", "cpu",
                           "--metric", "score_over_random"]) == 0
  assert _is_png(out)
  assert "score_over_random of 2 run(s) against CPU minutes" in (
      capsys.readouterr().out)
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(SystemExit):
    plot.main([str(empty), "--out", str(out)])
  assert "has no metrics.jsonl rows" in capsys.readouterr().err
