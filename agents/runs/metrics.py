"""``metrics.jsonl``: one JSON line per training iteration."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List

import numpy as np

from agents.runs.run_dir import atomic_write_text


def read_metrics(path: str) -> List[Dict[str, Any]]:
  """The rows of the metrics file at ``path`` (none if it does not exist)."""
  rows = []
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          rows.append(json.loads(line))
        except ValueError:
          pass  # A line cut by a crash.
  return rows


def to_json(metrics: Dict[str, Any]) -> Dict[str, Any]:
  """Host scalars of ``metrics`` as JSON values (non-finite floats: None)."""
  out = {}
  for k, v in metrics.items():
    v = np.asarray(v).item()
    out[k] = None if isinstance(v, float) and not np.isfinite(v) else v
  return out


def keep_until(path: str, iteration: int) -> List[Dict[str, Any]]:
  """Drops (atomically) the rows of ``path`` written after ``iteration``
  (a resumed run redoes them); returns the rows kept."""
  rows = [r for r in read_metrics(path) if r.get("iteration", 0) <= iteration]
  atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
  return rows
