"""The tree's storage: the memory estimate (`tree_nbytes`) and compact
embeddings (`embedding_dtype`)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcts


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
