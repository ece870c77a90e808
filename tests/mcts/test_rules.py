"""`mcts.rules`: the library's selection rules as descriptions compute the
`action_selection` rules they name, and say when they read one node."""
import functools

import jax
import jax.numpy as jnp

import mcts
from mcts import action_selection
from mcts import qtransforms
from mcts import rules
from tests.mcts import problems


def _one_searched_tree():
  """ONE tree (no batch axis) of a Gumbel search, with its extra data."""
  problem = problems.make_problem(5, num_actions=6, batch_size=1,
                                  with_invalid=True)
  tree = mcts.gumbel_muzero_policy(
      problem.params(), jax.random.PRNGKey(0), problem.root(mcts),
      problem.recurrent_fn(mcts), num_simulations=10,
      invalid_actions=problem.invalid_actions_jax()).search_tree
  return jax.tree.map(lambda x: x[0], tree)


def test_rules_compute_the_rules_they_name():
  tree = _one_searched_tree()
  key = jax.random.PRNGKey(1)
  min_max = qtransforms.ByMinMax(min_value=-1.0, max_value=1.0)
  puct = rules.Puct(pb_c_init=1.5, pb_c_base=100.0, qtransform=min_max)
  for node, depth in ((0, 0), (1, 1), (2, 2)):
    assert puct(key, tree, node, depth) == (
        action_selection.muzero_action_selection(
            key, tree, node, depth, pb_c_init=1.5, pb_c_base=100.0,
            qtransform=functools.partial(mcts.qtransform_by_min_max,
                                         min_value=-1.0, max_value=1.0)))
  # At the root, called without a depth (as `search` calls a root rule).
  assert puct(key, tree, 0) == puct(key, tree, 0, 0)
  root = rules.GumbelRoot(num_simulations=10, max_num_considered_actions=4)
  assert root(key, tree, 0) == (
      action_selection.gumbel_muzero_root_action_selection(
          key, tree, 0, num_simulations=10, max_num_considered_actions=4))
  interior = rules.GumbelInterior()
  assert interior(key, tree, 1, 1) == (
      action_selection.gumbel_muzero_interior_action_selection(
          key, tree, 1, 1))


def test_rules_read_one_node_with_a_library_qtransform_only():
  assert rules.reads_one_node(rules.Puct())
  assert rules.reads_one_node(rules.GumbelInterior())
  assert rules.reads_one_node(rules.GumbelRoot(8, 4))
  assert not rules.reads_one_node(rules.Puct(
      qtransform=lambda tree, node: jnp.zeros(tree.num_actions)))
  assert not rules.reads_one_node(action_selection.muzero_action_selection)
  assert not rules.reads_one_node(functools.partial(
      action_selection.muzero_action_selection, depth=0))
