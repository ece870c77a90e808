"""Our search on hand-computed trees, invariants, transformations, devices."""
import functools
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcts
from mcts.lowering import cpu_splits
from mcts.lowering import platforms
from tests.mcts import problems


# ---------------------------------------------------------------------------
# A 2-level, 3-action tree computed by hand.
# ---------------------------------------------------------------------------

PRIOR = np.array([0.5, 0.3, 0.2], np.float32)


def _bandit_recurrent_fn(params, rng_key, action, embedding):
  """Every edge: reward 1 for action 1 else 0; child value 0; prior PRIOR."""
  del params, rng_key
  batch = action.shape[0]
  out = mcts.RecurrentFnOutput(
      reward=(action == 1).astype(jnp.float32),
      discount=jnp.ones(batch, jnp.float32),
      prior_logits=jnp.log(jnp.broadcast_to(PRIOR, (batch, 3))),
      value=jnp.zeros(batch, jnp.float32))
  return out, embedding


def test_hand_computed_two_level_tree():
  """pUCT, noise off, max_depth=2, 5 simulations. By hand (N = visits,
  pUCT value term = Q normalised by parent and siblings):

    sim 1: root picks a0 (largest prior)      -> node 1, G = 0
    sim 2: a1 (0.3 vs 0.5/2 = 0.25)           -> node 2, G = 1
    sim 3: a1 (normalised Q 1) then a0 at 2   -> node 3, G = 1 + 0
    sim 4: a1, then a1 at node 2 (0.3 > .25)  -> node 4, G = 1 + 1
    sim 5: a1, then a1 at node 2; node 4 is at max_depth, so it is evaluated
           again instead of expanded (no node 5), G = 1 + 1.
  """
  root = mcts.RootFnOutput(prior_logits=jnp.log(PRIOR)[None],
                           value=jnp.zeros(1), embedding=jnp.zeros(1))
  out = mcts.muzero_policy((), jax.random.PRNGKey(0), root,
                           _bandit_recurrent_fn, num_simulations=5,
                           max_depth=2, dirichlet_fraction=0.0)
  tree = out.search_tree
  np.testing.assert_array_equal(tree.node_visits[0], [6, 1, 4, 1, 2, 0])
  np.testing.assert_allclose(tree.node_values[0, :5],
                             [1.0, 0.0, 0.5, 0.0, 0.0], atol=1e-6)
  np.testing.assert_array_equal(tree.parents[0], [-1, 0, 0, 2, 2, -1])
  np.testing.assert_array_equal(tree.action_from_parent[0],
                                [-1, 0, 1, 0, 1, -1])
  np.testing.assert_array_equal(tree.children_visits[0, 0], [1, 4, 0])
  np.testing.assert_array_equal(tree.children_visits[0, 2], [1, 2, 0])
  np.testing.assert_allclose(tree.qvalues(jnp.zeros(1, jnp.int32))[0],
                             [0.0, 1.5, 0.0], atol=1e-6)
  np.testing.assert_allclose(tree.children_rewards[0, 2], [0.0, 1.0, 0.0])
  summary = tree.summary()
  np.testing.assert_allclose(summary.value, [1.0], atol=1e-6)
  np.testing.assert_allclose(out.action_weights[0], [0.2, 0.8, 0.0])
  np.testing.assert_allclose(summary.qvalues[0], [0.0, 1.5, 0.0], atol=1e-6)


# ---------------------------------------------------------------------------
# Invariants on random problems.
# ---------------------------------------------------------------------------

def _random_search(policy, seed, batch=4, actions=5, sims=40, max_depth=None,
                   discount_kind="mixed", with_invalid=True, **kwargs):
  problem = problems.make_problem(seed, num_actions=actions, batch_size=batch,
                                  discount_kind=discount_kind,
                                  with_invalid=with_invalid)
  fn = functools.partial(getattr(mcts, policy),
                         recurrent_fn=problem.recurrent_fn(mcts),
                         num_simulations=sims, max_depth=max_depth,
                         invalid_actions=problem.invalid_actions_jax(),
                         **kwargs)
  return problem, fn, problem.params(), problem.root(mcts)


def _max_depth(tree) -> int:
  """The depth of the deepest node of any tree (parents come first)."""
  parents = np.asarray(tree.parents)
  depth = np.zeros_like(parents)
  for n in range(1, parents.shape[1]):
    depth[:, n] = np.where(parents[:, n] >= 0,
                           depth[np.arange(len(depth)), parents[:, n]] + 1, 0)
  return int(depth.max())


@pytest.mark.parametrize("policy,max_depth", [
    ("muzero_policy", None), ("gumbel_muzero_policy", None),
    ("muzero_policy", 3), ("gumbel_muzero_policy", 2)])
def test_tree_invariants(policy, max_depth):
  sims = 40
  problem, fn, params, root = _random_search(policy, seed=3,
                                             max_depth=max_depth, sims=sims)
  tree = jax.jit(fn)(params, jax.random.PRNGKey(7), root).search_tree
  visits = np.asarray(tree.node_visits)
  children_visits = np.asarray(tree.children_visits)
  values = np.asarray(tree.node_values, np.float64)
  raw = np.asarray(tree.raw_values, np.float64)
  q = np.asarray(tree.children_rewards, np.float64) + np.asarray(
      tree.children_discounts, np.float64) * np.asarray(tree.children_values,
                                                        np.float64)
  np.testing.assert_array_equal(visits[:, 0], sims + 1)
  has_children = children_visits.sum(-1) > 0
  expanded = visits > 0
  # A node's visits are its own evaluations plus its children's visits; only
  # leaves at max_depth are evaluated more than once.
  np.testing.assert_array_equal(
      (visits - children_visits.sum(-1))[has_children], 1)
  # V(n) N(n) = v_raw(n) + sum_a N(n, a) Q(n, a): values are the means of
  # the backed-up returns.
  lhs = (values * visits)[has_children]
  rhs = (raw + (children_visits * q).sum(-1))[has_children]
  np.testing.assert_allclose(lhs, rhs, rtol=1e-4, atol=1e-4)
  # Children's visits equal the visits of the child nodes.
  index = np.asarray(tree.children_index)
  for b in range(visits.shape[0]):
    for n, a in zip(*np.nonzero(index[b] >= 0)):
      assert children_visits[b, n, a] == visits[b, index[b, n, a]]
  # Nodes are allocated in order; unused slots stay empty.
  assert np.all(np.diff(expanded.astype(int), axis=1)[expanded[:, 1:]] >= 0)
  if max_depth is not None:
    assert _max_depth(tree) <= max_depth
  # Invalid root actions are never visited.
  invalid = problem.invalid_actions
  assert np.all(children_visits[:, 0][invalid] == 0)


@pytest.mark.parametrize("policy", ["muzero_policy", "gumbel_muzero_policy"])
def test_same_key_same_result_and_jit_matches_eager(policy):
  _, fn, params, root = _random_search(policy, seed=5, sims=4)
  key = jax.random.PRNGKey(42)
  jitted = jax.jit(fn)
  a = jitted(params, key, root)
  b = jitted(params, key, root)
  eager = fn(params, key, root)
  for x, y, z in zip(jax.tree.leaves(a), jax.tree.leaves(b),
                     jax.tree.leaves(eager)):
    np.testing.assert_array_equal(x, y)
    np.testing.assert_allclose(x, z, rtol=1e-6, atol=1e-6)
  # With noise on, another key gives another search.
  c = jitted(params, jax.random.PRNGKey(43), root)
  assert not np.array_equal(a.search_tree.node_visits,
                            c.search_tree.node_visits)


@pytest.mark.parametrize("policy,max_depth", [
    pytest.param("muzero_policy", None, marks=pytest.mark.slow),
    ("gumbel_muzero_policy", None),
    pytest.param("muzero_policy", 3, marks=pytest.mark.slow)])
def test_several_levels_per_loop_iteration_give_the_same_tree(
    policy, max_depth, monkeypatch):
  # Accelerators take several tree levels per while-loop iteration (see
  # LEVELS_PER_ITERATION); here the CPU is made to take 3, and 3 does not
  # divide the depths, so finished trees go through idle levels.
  _, fn, params, root = _random_search(policy, seed=11, sims=30,
                                       max_depth=max_depth)
  key = jax.random.PRNGKey(3)
  one = jax.jit(fn)(params, key, root)
  monkeypatch.setattr(platforms, "LEVELS_PER_ITERATION", dict(cpu=3))
  jax.clear_caches()  # Or jit would reuse the program traced above.
  three = jax.jit(fn)(params, key, root)
  # Deeper than one iteration's 3 levels, or down to max_depth.
  assert _max_depth(one.search_tree) >= min(4, max_depth or 4)
  for x, y in zip(jax.tree.leaves(one), jax.tree.leaves(three)):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("policy,max_depth,kwargs", [
    pytest.param("muzero_policy", None, {}, marks=pytest.mark.slow),
    ("muzero_policy", 3, {}),
    pytest.param("gumbel_muzero_policy", None, {}, marks=pytest.mark.slow),
    ("gumbel_muzero_policy", None, dict(max_num_considered_actions=3)),
    pytest.param("muzero_policy", None,
                 dict(qtransform=functools.partial(
                     mcts.qtransform_by_min_max, min_value=-2.0,
                     max_value=2.0)), marks=pytest.mark.slow)])
def test_avoiding_cpu_splits_gives_the_same_tree(policy, max_depth, kwargs,
                                               monkeypatch):
  # On the CPU, a batched search over large trees reads each node's rows
  # through in-place buffers, gives the rules a one-node view, and backs up
  # in chunks of levels; here every tree counts as large.
  _, fn, params, root = _random_search(policy, seed=5, batch=3, actions=6,
                                       sims=30, max_depth=max_depth,
                                       **kwargs)
  key = jax.random.PRNGKey(9)
  plain = jax.jit(fn)(params, key, root)
  monkeypatch.setattr(cpu_splits, "CPU_SPLIT_BYTES", 0)
  monkeypatch.setattr(cpu_splits, "schedulable_cores", lambda: 2)
  assert cpu_splits.avoid_cpu_splits(plain.search_tree)
  jax.clear_caches()  # Or jit would reuse the program traced above.
  in_place = jax.jit(fn)(params, key, root)
  assert _max_depth(plain.search_tree) >= min(3, max_depth or 3)
  for x, y in zip(jax.tree.leaves(plain), jax.tree.leaves(in_place)):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("batch,qtransform", [
    (5, mcts.qtransform_completed_by_mix_value),
    (1, functools.partial(mcts.qtransform_completed_by_mix_value,
                          rescale_values=False)),
    pytest.param(3, mcts.qtransform_by_parent_and_siblings,
                 marks=pytest.mark.slow)])
def test_gumbel_root_scoring_only_the_considered_actions_changes_nothing(
    batch, qtransform):
  # With k = 6 of 40 actions the root selection scores a view of k + 1
  # actions; a Q-transform the policy does not know (a wrapper of the same
  # one) makes it score all 40. Rows with fewer than 6 valid actions and
  # Gumbel noise included.
  problem, fn, params, root = _random_search(
      "gumbel_muzero_policy", seed=5, batch=batch, actions=40, sims=48,
      max_num_considered_actions=6)
  invalid = np.asarray(problem.invalid_actions_jax()) != 0
  invalid[0, 4:] = True
  full_path = lambda tree, node: qtransform(tree, node)  # pylint: disable=unnecessary-lambda
  outs = [jax.jit(functools.partial(fn, invalid_actions=invalid,
                                    qtransform=q))(
      params, jax.random.PRNGKey(2), root) for q in (qtransform, full_path)]
  assert outs[0].search_tree.extra_data.root_considered is not None
  assert outs[1].search_tree.extra_data.root_considered is None
  visits = np.asarray(outs[0].search_tree.summary().visit_counts)
  np.testing.assert_array_equal((visits > 0).sum(-1),
                                np.minimum(6, (~invalid).sum(-1)))
  for x, y in zip(jax.tree.leaves(outs[0].replace(search_tree=None)),
                  jax.tree.leaves(outs[1].replace(search_tree=None))):
    np.testing.assert_array_equal(x, y)
  for name in ("node_visits", "node_values", "children_visits", "parents"):
    np.testing.assert_array_equal(getattr(outs[0].search_tree, name),
                                  getattr(outs[1].search_tree, name))


def test_vmap_over_an_outer_axis_matches_separate_searches():
  _, fn, params, root = _random_search("gumbel_muzero_policy", seed=9,
                                       sims=10, with_invalid=False)
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  roots = jax.tree.map(lambda x: jnp.stack([x, x[::-1], x]), root)
  batched = jax.jit(jax.vmap(fn, in_axes=(None, 0, 0)))(params, keys, roots)
  for i in range(3):
    single = jax.jit(fn)(params, keys[i], jax.tree.map(lambda x: x[i], roots))
    np.testing.assert_allclose(batched.action_weights[i],
                               single.action_weights, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(batched.search_tree.node_visits[i],
                                  single.search_tree.node_visits)


def test_params_any_pytree_and_hk_style_loop_fn():
  """params may be any pytree; loop_fn may be any fori_loop-like."""
  problem = problems.make_problem(1, num_actions=4, batch_size=2)
  tables = problem.params()
  nested = {"tables": [tables], "unused": (jnp.ones(3), None)}

  def recurrent_fn(params, rng_key, action, embedding):
    return problem.recurrent_fn(mcts)(params["tables"][0], rng_key, action,
                                      embedding)

  def python_loop(lower, upper, body, state):
    for i in range(lower, upper):
      state = body(i, state)
    return state

  root = problem.root(mcts)
  policy = jax.jit(functools.partial(
      mcts.gumbel_muzero_policy, recurrent_fn=recurrent_fn,
      num_simulations=3), static_argnames="loop_fn")
  a = policy(nested, jax.random.PRNGKey(0), root)
  b = policy(nested, jax.random.PRNGKey(0), root, loop_fn=python_loop)
  np.testing.assert_array_equal(a.search_tree.node_visits,
                                b.search_tree.node_visits)


def test_custom_selection_fn_reading_mctx_fields():
  """A user's mctx-style selection rule reads tree.children_visits etc."""
  problem = problems.make_problem(2, num_actions=3, batch_size=2)

  def least_visited(rng_key, tree, node_index, depth=0):
    del rng_key, depth
    score = (-tree.children_visits[node_index] +
             1e-3 * tree.children_values[node_index] +
             0 * tree.children_rewards[node_index] +
             0 * tree.children_discounts[node_index])
    return jnp.argmax(score).astype(jnp.int32)

  tree = jax.jit(functools.partial(
      mcts.search, recurrent_fn=problem.recurrent_fn(mcts),
      root_action_selection_fn=least_visited,
      interior_action_selection_fn=least_visited, num_simulations=9))(
          problem.params(), jax.random.PRNGKey(0), root=problem.root(mcts))
  # Visiting the least visited child spreads the root's visits evenly.
  np.testing.assert_array_equal(tree.summary().visit_counts,
                                [[3, 3, 3], [3, 3, 3]])


# ---------------------------------------------------------------------------
# Several devices.
# ---------------------------------------------------------------------------

_DEVICES_SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, functools
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import mcts
    from tests.mcts import problems
    assert jax.device_count() == 8, jax.devices()
    problem = problems.make_problem(0, num_actions=5, batch_size=16)
    fn = functools.partial(mcts.gumbel_muzero_policy,
                           recurrent_fn=problem.recurrent_fn(mcts),
                           num_simulations=12)
    params, root = problem.params(), problem.root(mcts)
    key = jax.random.PRNGKey(0)
    single = jax.jit(fn)(params, key, root)
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    sharded_root = jax.device_put(root, NamedSharding(mesh, P("batch")))
    sharded = jax.jit(fn)(params, key, sharded_root)
    assert len(sharded.action_weights.sharding.device_set) == 8
    np.testing.assert_allclose(sharded.action_weights, single.action_weights,
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(sharded.search_tree.node_visits,
                                  single.search_tree.node_visits)
    # pmap: each device searches its 2 roots (no noise, so that the result
    # does not depend on how the noise is split over devices).
    noiseless = functools.partial(fn, gumbel_scale=0.0)
    per_device = jax.tree.map(lambda x: x.reshape((8, 2) + x.shape[1:]), root)
    pmapped = jax.pmap(noiseless, in_axes=(None, None, 0))(params, key,
                                                           per_device)
    np.testing.assert_array_equal(
        pmapped.search_tree.node_visits.reshape(16, -1),
        jax.jit(noiseless)(params, key, root).search_tree.node_visits)
    print("OK")
""")


def test_search_sharded_over_eight_devices():
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=(
      os.environ.get("XLA_FLAGS", "")
      + " --xla_force_host_platform_device_count=8").strip())
  root_dir = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  result = subprocess.run([sys.executable, "-c", _DEVICES_SCRIPT], env=env,
                          cwd=root_dir, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "OK" in result.stdout
