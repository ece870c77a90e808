"""The library's selection rules as descriptions: frozen callables that
carry their numbers.

A policy builds its rule here and hands it to `search` as its selection
functions (`Puct` for the root and the interior; `GumbelRoot` and
`GumbelInterior`). Called, each is the `action_selection` rule it names,
with mctx's signature, so the generic walk runs it as any user's rule.
Read, it tells whoever lowers the search which rule it is and with which
numbers, its Q-transform's among them (a `qtransforms.LIBRARY`
description, or the user's function): `mcts.lowering.walks` runs it in the
walk kernel, or on the CPU gives it a one-node view of the tree. Any other
function given to `search` is a user's rule, which the generic walk calls
as it is.
"""
from typing import Any, Callable, NamedTuple

import chex

from mcts import action_selection
from mcts import qtransforms
from mcts.tree import Tree


class Puct(NamedTuple):
  """pUCT (`action_selection.muzero_action_selection`), at the root (called
  without a depth: depth 0) and below it.

  Attributes:
    pb_c_init, pb_c_base: pUCT's c1 and c2.
    qtransform: its Q-transform, `(tree, node_index) -> [A]`.
  """
  pb_c_init: Any = 1.25
  pb_c_base: Any = 19652.0
  qtransform: Callable = qtransforms.ByParentAndSiblings()

  def __call__(self, rng_key: chex.PRNGKey, tree: Tree,
               node_index: chex.Numeric,
               depth: chex.Numeric = 0) -> chex.Array:
    return action_selection.muzero_action_selection(
        rng_key, tree, node_index, depth, pb_c_init=self.pb_c_init,
        pb_c_base=self.pb_c_base, qtransform=self.qtransform)


class GumbelRoot(NamedTuple):
  """Gumbel MuZero's root rule
  (`action_selection.gumbel_muzero_root_action_selection`).

  Attributes:
    num_simulations: the simulations sequential halving schedules.
    max_num_considered_actions: k, the actions it starts from.
    qtransform: its Q-transform.
  """
  num_simulations: int
  max_num_considered_actions: int
  qtransform: Callable = qtransforms.CompletedByMixValue()

  def __call__(self, rng_key: chex.PRNGKey, tree: Tree,
               node_index: chex.Numeric) -> chex.Array:
    return action_selection.gumbel_muzero_root_action_selection(
        rng_key, tree, node_index, num_simulations=self.num_simulations,
        max_num_considered_actions=self.max_num_considered_actions,
        qtransform=self.qtransform)


class GumbelInterior(NamedTuple):
  """Gumbel MuZero's interior rule
  (`action_selection.gumbel_muzero_interior_action_selection`).

  Attributes:
    qtransform: its Q-transform.
  """
  qtransform: Callable = qtransforms.CompletedByMixValue()

  def __call__(self, rng_key: chex.PRNGKey, tree: Tree,
               node_index: chex.Numeric,
               depth: chex.Numeric) -> chex.Array:
    return action_selection.gumbel_muzero_interior_action_selection(
        rng_key, tree, node_index, depth, qtransform=self.qtransform)


RULES = (Puct, GumbelRoot, GumbelInterior)


def reads_one_node(selection_fn) -> bool:
  """Whether `selection_fn` is one of `RULES` with a library Q-transform:
  such a rule reads only the node it selects at (that node's rows and
  statistics), the root's invalid actions and `extra_data`, so a lowering
  may give it a one-node view of the tree."""
  return (isinstance(selection_fn, RULES)
          and isinstance(selection_fn.qtransform, qtransforms.LIBRARY))
