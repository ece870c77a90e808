"""Pictures of a searched tree (Graphviz)."""
import re
import shutil

import jax
import numpy as np

import mcts
from tests.mcts import problems


def test_to_dot_draws_every_expanded_node_and_edge(tmp_path):
  problem = problems.make_problem(0, num_actions=3, batch_size=2)
  tree = mcts.muzero_policy(problem.params(), jax.random.PRNGKey(0),
                            problem.root(mcts), problem.recurrent_fn(mcts),
                            num_simulations=7).search_tree
  dot = mcts.to_dot(tree, batch_index=1, action_labels=["L", "M", "R"])
  assert dot.startswith("digraph MCTS {") and dot.rstrip().endswith("}")
  nodes = re.findall(r"^  n(\d+) \[label=\"#\d+\\nN=(\d+)", dot, re.M)
  assert [int(n) for n, _ in nodes] == list(range(8))
  assert [int(v) for _, v in nodes] == list(np.asarray(tree.node_visits[1]))
  edges = re.findall(r"^  n(\d+) -> n(\d+) \[label=\"a=(\w)", dot, re.M)
  assert len(edges) == 7
  for parent, child, action in edges:
    assert int(tree.parents[1, int(child)]) == int(parent)
    assert "LMR"[int(tree.action_from_parent[1, int(child)])] == action
  if shutil.which("dot"):
    path = mcts.render_dot(dot, str(tmp_path / "tree.svg"))
    assert open(path).read().lstrip().startswith("<?xml")
