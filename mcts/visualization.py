"""A picture of a searched tree: Graphviz source, and rendering it."""
import shutil
import subprocess
from typing import Optional, Sequence

import numpy as np

from mcts.tree import Tree


def to_dot(tree: Tree, batch_index: int = 0, *,
           action_labels: Optional[Sequence[str]] = None,
           max_nodes: Optional[int] = None) -> str:
  """Graphviz (dot) source of one tree of the batch.

  Nodes show their index, visits N, value V and raw value v; edges show the
  action, its prior probability P, reward r and Q-value. Unexpanded actions
  are not drawn.

  Args:
    tree: a searched (batched) tree.
    batch_index: which tree of the batch.
    action_labels: names of the actions (default: their indices).
    max_nodes: draw only the first nodes, in order of expansion.
  """
  visits = np.asarray(tree.node_visits[batch_index])
  values = np.asarray(tree.node_values[batch_index])
  raw = np.asarray(tree.raw_values[batch_index])
  parents = np.asarray(tree.parents[batch_index])
  actions = np.asarray(tree.action_from_parent[batch_index])
  rewards = np.asarray(tree.node_rewards[batch_index])
  discounts = np.asarray(tree.node_discounts[batch_index])
  logits = np.asarray(tree.children_prior_logits[batch_index], np.float64)
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  label = (lambda a: str(a)) if action_labels is None else (
      lambda a: str(action_labels[a]))
  num_nodes = len(visits) if max_nodes is None else min(max_nodes,
                                                        len(visits))
  lines = ["digraph MCTS {", '  node [shape=box, fontname="Helvetica"];',
           '  edge [fontname="Helvetica", fontsize=10];']
  for n in range(num_nodes):
    if visits[n] == 0:
      continue
    color = "lightblue" if n == Tree.ROOT_INDEX else "white"
    lines.append(f'  n{n} [label="#{n}\\nN={visits[n]}\\nV={values[n]:.3f}'
                 f'\\nv={raw[n]:.3f}", style=filled, fillcolor={color}];')
  for n in range(1, num_nodes):
    if visits[n] == 0 or parents[n] < 0:
      continue
    p, a = parents[n], actions[n]
    q = rewards[n] + discounts[n] * values[n]
    lines.append(f'  n{p} -> n{n} [label="a={label(a)}\\nP={probs[p, a]:.2f}'
                 f'\\nr={rewards[n]:.2f} Q={q:.3f}"];')
  lines.append("}")
  return "\n".join(lines) + "\n"


def render_dot(source: str, path: str, fmt: Optional[str] = None) -> str:
  """Renders dot source to `path` (PNG, SVG, PDF: by `fmt` or the suffix)
  with the `dot` program of Graphviz; returns `path`."""
  dot = shutil.which("dot")
  if dot is None:
    raise RuntimeError("render_dot needs the Graphviz `dot` program (e.g. "
                       "`apt-get install graphviz`); to_dot's source can "
                       "also be pasted into any Graphviz viewer.")
  fmt = fmt or path.rsplit(".", 1)[-1]
  subprocess.run([dot, f"-T{fmt}", "-o", path], input=source.encode(),
                 check=True)
  return path
