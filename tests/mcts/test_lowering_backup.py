"""The loop-free backup along the recorded path (the accelerators' lowering)
against the level-by-level backup (the CPU's): the same trees."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcts
from mcts.lowering import backup
from mcts.lowering import cpu_backup
from mcts.lowering import platforms
from tests.mcts import problems
from tests.mcts import test_stochastic

def _assert_same(a, b):
  """Integer leaves equal; float leaves equal up to rounding (the returns
  are summed in another order)."""
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    x, y = np.asarray(x), np.asarray(y)
    if np.issubdtype(x.dtype, np.floating) or x.dtype == jnp.bfloat16:
      np.testing.assert_allclose(x.astype(np.float32), y.astype(np.float32),
                                 rtol=1e-5, atol=1e-6)
    else:
      np.testing.assert_array_equal(x, y)


def _on_both_lowerings(fn, *args):
  """`jax.jit(fn)(*args)` lowered for the CPU and as for an accelerator."""
  jax.clear_caches()
  cpu = jax.jit(fn)(*args)
  jax.clear_caches()  # Or jit would reuse the program traced above.
  with platforms.forced_platform("default"):
    accelerator = jax.jit(fn)(*args)
  jax.clear_caches()
  return cpu, accelerator


@functools.partial(jax.jit, static_argnames="length")
def _both_backups(tree, leaf, depth, length):
  path = jnp.zeros((leaf.shape[0], length + 1), jnp.int32)
  path = cpu_backup.recorded_path(tree, leaf, path, depth)
  return (cpu_backup.backward_by_level(tree, leaf),
          backup.backward_along_path(tree, leaf, path, depth))


@pytest.mark.parametrize("discount_kind", ["mixed", "zero_sum"])
def test_backup_along_path_equals_level_by_level(discount_kind):
  # Back up from every node of searched trees at once (one per tree of a
  # batch of copies), with the path found from the parents.
  problem = problems.make_problem(1, num_actions=4, batch_size=3,
                                  discount_kind=discount_kind,
                                  with_invalid=True)
  tree = jax.jit(functools.partial(
      mcts.muzero_policy, recurrent_fn=problem.recurrent_fn(mcts),
      num_simulations=24))(problem.params(), jax.random.PRNGKey(0),
                           problem.root(mcts)).search_tree
  batch, nodes = tree.node_visits.shape
  copies = jax.tree.map(lambda x: np.repeat(np.asarray(x), nodes, axis=0),
                        tree)
  leaf = np.tile(np.arange(nodes, dtype=np.int32), batch)
  parents = np.asarray(copies.parents)
  depth = np.zeros_like(leaf)
  for b, node in enumerate(leaf):
    while parents[b, node] >= 0:
      node, depth[b] = parents[b, node], depth[b] + 1
  assert depth.max() >= 4
  by_level, along_path = _both_backups(copies, leaf, depth, nodes - 1)
  _assert_same(by_level, along_path)
  # The root as leaf (depth 0) changes nothing.
  _assert_same(jax.tree.map(lambda x: x[::nodes], along_path), tree)


@pytest.mark.parametrize("policy,max_depth,kwargs", [
    ("muzero_policy", None, {}),
    pytest.param("gumbel_muzero_policy", 3,
                 dict(embedding_dtype=jnp.bfloat16), marks=pytest.mark.slow)])
def test_accelerator_lowering_gives_the_same_tree(policy, max_depth, kwargs):
  problem = problems.make_problem(2, num_actions=5, batch_size=4,
                                  discount_kind="mixed", with_invalid=True)
  fn = functools.partial(getattr(mcts, policy),
                         recurrent_fn=problem.recurrent_fn(mcts),
                         num_simulations=30, max_depth=max_depth,
                         invalid_actions=problem.invalid_actions_jax(),
                         **kwargs)
  _assert_same(*_on_both_lowerings(fn, problem.params(),
                                   jax.random.PRNGKey(3), problem.root(mcts)))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("policy", ["muzero_policy", "gumbel_muzero_policy"])
@pytest.mark.parametrize("discount_kind,max_depth", [
    ("mixed", None), ("zero_sum", 4), ("gamma", 2)])
def test_accelerator_lowering_on_random_problems(seed, policy, discount_kind,
                                                 max_depth):
  problem = problems.make_problem(seed, num_actions=6, batch_size=5,
                                  discount_kind=discount_kind,
                                  with_invalid=True)
  fn = functools.partial(getattr(mcts, policy),
                         recurrent_fn=problem.recurrent_fn(mcts),
                         num_simulations=40, max_depth=max_depth,
                         invalid_actions=problem.invalid_actions_jax())
  _assert_same(*_on_both_lowerings(fn, problem.params(),
                                   jax.random.PRNGKey(seed),
                                   problem.root(mcts)))


@pytest.mark.slow
def test_accelerator_lowering_continues_a_kept_tree_until_full():
  # A kept tree with little room: the last simulations find it full.
  problem = problems.make_problem(0, num_actions=3, batch_size=2,
                                  discount_kind="zero_sum")
  policy = functools.partial(mcts.muzero_policy, capacity=20,
                             recurrent_fn=problem.recurrent_fn(mcts))

  def fn(params, key, root):
    out = policy(params, key, root, num_simulations=12)
    kept = mcts.get_subtree(out.search_tree, out.action)
    return policy(params, key, root, num_simulations=16, tree=kept)

  _assert_same(*_on_both_lowerings(fn, problem.params(),
                                   jax.random.PRNGKey(1), problem.root(mcts)))


@pytest.mark.slow
def test_accelerator_lowering_of_the_stochastic_policy():
  fn = functools.partial(test_stochastic._dice_search.__wrapped__,
                         num_simulations=30, max_depth=4)
  _assert_same(*_on_both_lowerings(fn, test_stochastic.dice_params(),
                                   test_stochastic.DICE_ROOTS))
