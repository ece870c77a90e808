"""What we add to mctx: interior masks, memory estimate, compact embeddings,
tree pictures."""
import functools
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcts
from tests import problems


def _masked_problem(seed, num_actions=4, batch_size=3):
  """A table problem whose states each forbid a random subset of actions
  (some states forbid all of them, like terminal states)."""
  problem = problems.make_problem(seed, num_actions=num_actions,
                                  batch_size=batch_size, discount_kind="mixed")
  rng = np.random.default_rng(seed + 1000)
  invalid = rng.random((problem.num_states, num_actions)) < 0.5
  invalid[rng.random(problem.num_states) < 0.05] = True
  table_fn = problem.recurrent_fn(mcts)

  def recurrent_fn(params, rng_key, action, embedding):
    out, next_embedding = table_fn(params, rng_key, action, embedding)
    return out.replace(invalid_actions=params["invalid"][next_embedding]), (
        next_embedding)

  params = dict(problem.params(), invalid=jnp.asarray(invalid))
  return problem, invalid, recurrent_fn, params


@pytest.mark.parametrize("policy", ["muzero_policy", "gumbel_muzero_policy"])
def test_interior_invalid_actions_are_never_visited(policy):
  fn = None
  for seed in range(6):
    problem, invalid, recurrent_fn, params = _masked_problem(seed)
    if fn is None:  # The same shapes: compile once.
      fn = jax.jit(functools.partial(getattr(mcts, policy),
                                     recurrent_fn=recurrent_fn,
                                     num_simulations=48))
    tree = fn(params, jax.random.PRNGKey(seed),
              problem.root(mcts)).search_tree
    visits = np.asarray(tree.node_visits)
    children_visits = np.asarray(tree.children_visits)
    # The state of each node: its embedding.
    states = np.asarray(tree.embeddings)
    for b in range(visits.shape[0]):
      for n in np.nonzero(visits[b])[0]:
        if n == 0:
          continue
        mask = invalid[states[b, n]]
        if mask.all():  # A node with no legal action is searched unmasked.
          continue
        assert np.all(children_visits[b, n][mask] == 0), (seed, b, n)
        if children_visits[b, n].sum() > 0:
          np.testing.assert_array_equal(
              np.asarray(tree.children_index[b, n])[mask], mcts.Tree.INVALID)


def test_interior_mask_of_all_valid_actions_changes_nothing():
  problem = problems.make_problem(4, num_actions=5, batch_size=2)
  table_fn = problem.recurrent_fn(mcts)

  def with_mask(params, rng_key, action, embedding):
    out, emb = table_fn(params, rng_key, action, embedding)
    return out.replace(invalid_actions=jnp.zeros_like(out.prior_logits)), emb

  def search(fn):
    return mcts.gumbel_muzero_policy(problem.params(), jax.random.PRNGKey(0),
                                     problem.root(mcts), fn,
                                     num_simulations=20)
  a, b = search(table_fn), search(with_mask)
  np.testing.assert_array_equal(a.search_tree.node_visits,
                                b.search_tree.node_visits)
  np.testing.assert_allclose(a.action_weights, b.action_weights, atol=1e-6)


@pytest.mark.parametrize("policy,embedding_dtype", [
    ("muzero_policy", None), ("gumbel_muzero_policy", None),
    ("gumbel_muzero_policy", jnp.bfloat16)])
def test_tree_nbytes_matches_the_allocated_tree(policy, embedding_dtype):
  batch, actions, sims = 3, 7, 9
  embedding = {"h": jnp.zeros((batch, 4, 5)), "id": jnp.zeros((batch,),
                                                              jnp.int32)}

  def recurrent_fn(params, rng_key, action, embedding):
    del params, rng_key
    return mcts.RecurrentFnOutput(
        reward=jnp.zeros(batch), discount=jnp.ones(batch),
        prior_logits=jnp.zeros((batch, actions)),
        value=jnp.zeros(batch)), embedding

  root = mcts.RootFnOutput(prior_logits=jnp.zeros((batch, actions)),
                           value=jnp.zeros(batch), embedding=embedding)
  tree = getattr(mcts, policy)((), jax.random.PRNGKey(0), root, recurrent_fn,
                               sims, embedding_dtype=embedding_dtype
                               ).search_tree
  allocated = sum(x.nbytes for x in jax.tree.leaves(tree))
  extra = None
  if policy == "gumbel_muzero_policy":
    extra = {"gumbel": jax.ShapeDtypeStruct((batch, actions), jnp.float32)}
  one_root = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:],
                                                         x.dtype), embedding)
  assert mcts.tree_nbytes(batch, sims, actions, one_root,
                          embedding_dtype=embedding_dtype,
                          extra_data=extra) == allocated
  if embedding_dtype is not None:
    assert tree.embeddings["h"].dtype == jnp.bfloat16
    assert tree.embeddings["id"].dtype == jnp.int32


def test_bfloat16_embeddings_give_the_same_search_when_exact():
  """Embeddings that bfloat16 represents exactly search identically."""
  batch, actions = 2, 3

  def recurrent_fn(params, rng_key, action, embedding):
    del params, rng_key
    assert embedding.dtype == jnp.float32  # Cast back for the model.
    new = embedding * 0.5 + action[:, None].astype(jnp.float32)
    return mcts.RecurrentFnOutput(
        reward=new[:, 0] / 8, discount=jnp.ones(batch),
        prior_logits=jnp.stack([new[:, 0], -new[:, 0], new[:, 1]], -1) / 4,
        value=-new[:, 1] / 8), new

  root = mcts.RootFnOutput(prior_logits=jnp.zeros((batch, actions)),
                           value=jnp.zeros(batch),
                           embedding=jnp.array([[1.0, 2.0], [3.0, 0.5]]))
  runs = [mcts.gumbel_muzero_policy((), jax.random.PRNGKey(0), root,
                                    recurrent_fn, 6, max_depth=3,
                                    embedding_dtype=dtype)
          for dtype in (None, jnp.bfloat16)]
  np.testing.assert_array_equal(runs[0].search_tree.node_visits,
                                runs[1].search_tree.node_visits)
  np.testing.assert_array_equal(runs[0].action_weights,
                                runs[1].action_weights)


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
