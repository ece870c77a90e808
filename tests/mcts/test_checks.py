"""Bad input gets a clear error naming the argument, at trace time."""
import jax
import jax.numpy as jnp
import pytest

import mcts

B, A = 3, 4


def _root(batch=B, actions=A, value_batch=None, embedding=None):
  return mcts.RootFnOutput(
      prior_logits=jnp.zeros((batch, actions)),
      value=jnp.zeros((batch if value_batch is None else value_batch,)),
      embedding=jnp.zeros((batch, 2)) if embedding is None else embedding)


def _recurrent_fn(reward_shape=(B,), logits_shape=(B, A), value_dtype=None,
                  embedding_fn=lambda e: e, wrong_type=False):
  def recurrent_fn(params, rng_key, action, embedding):
    del params, rng_key, action
    value = jnp.zeros((B,), value_dtype or jnp.float32)
    out = mcts.RecurrentFnOutput(
        reward=jnp.zeros(reward_shape), discount=jnp.ones((B,)),
        prior_logits=jnp.zeros(logits_shape), value=value)
    if wrong_type:
      return (out.reward, out.value), embedding
    return out, embedding_fn(embedding)
  return recurrent_fn


def _run(policy="muzero_policy", root=None, recurrent_fn=None, jit=True,
         **kwargs):
  kwargs.setdefault("num_simulations", 4)
  fn = lambda key, root: getattr(mcts, policy)(
      (), key, root, recurrent_fn or _recurrent_fn(), **kwargs)
  if jit:
    fn = jax.jit(fn)
  return fn(jax.random.PRNGKey(0), root or _root())


@pytest.mark.parametrize("policy", ["muzero_policy", "gumbel_muzero_policy"])
@pytest.mark.parametrize("num_simulations", [0, -3, 2.5, None])
def test_num_simulations_must_be_positive_int(policy, num_simulations):
  with pytest.raises(ValueError, match="num_simulations must be a Python "
                     "int >= 1"):
    _run(policy, num_simulations=num_simulations)


def test_max_depth_must_be_positive():
  with pytest.raises(ValueError, match="max_depth must be"):
    _run(max_depth=0)


def test_value_batch_must_match_prior_logits():
  with pytest.raises(ValueError, match=r"root.value must have shape \[B\] = "
                     r"\[3\].*got shape \(5,\)"):
    _run(root=_root(value_batch=5))


def test_prior_logits_must_be_rank_two():
  root = mcts.RootFnOutput(prior_logits=jnp.zeros((B,)), value=jnp.zeros(B),
                           embedding=jnp.zeros((B, 2)))
  with pytest.raises(ValueError, match=r"root.prior_logits must have shape "
                     r"\[B, A\]"):
    _run(root=root)


def test_prior_logits_must_be_float():
  root = mcts.RootFnOutput(prior_logits=jnp.zeros((B, A), jnp.int32),
                           value=jnp.zeros(B), embedding=jnp.zeros((B, 2)))
  with pytest.raises(TypeError, match="root.prior_logits must be floating"):
    _run(root=root)


def test_embedding_batch_must_match():
  root = _root(embedding={"h": jnp.zeros((B, 2)), "c": jnp.zeros((B + 1, 2))})
  with pytest.raises(ValueError, match=r"root.embedding\['c'\] must have "
                     r"shape \[B, ...\] with B = 3"):
    _run(root=root)


def test_invalid_actions_shape():
  with pytest.raises(ValueError, match=r"invalid_actions must have shape "
                     r"\[B, A\] = \[3, 4\].*got shape \(3, 5\)"):
    _run(invalid_actions=jnp.zeros((B, A + 1)))


@pytest.mark.parametrize("policy", ["muzero_policy", "gumbel_muzero_policy"])
def test_all_root_actions_invalid(policy):
  invalid = jnp.zeros((B, A)).at[1].set(1.0)
  with pytest.raises(ValueError, match=r"every action invalid at the roots "
                     r"with batch indices \[1\]"):
    _run(policy, invalid_actions=invalid)


def test_all_root_actions_invalid_under_jit_in_debug_mode():
  invalid = jnp.ones((B, A))
  fn = jax.jit(lambda key, root, invalid: mcts.muzero_policy(
      (), key, root, _recurrent_fn(), num_simulations=2,
      invalid_actions=invalid))
  with jax.debug_nans(True):
    with pytest.raises(Exception, match="every action invalid"):
      jax.block_until_ready(fn(jax.random.PRNGKey(0), _root(), invalid))


def test_nan_from_model_is_caught_in_debug_mode():
  def nan_fn(params, rng_key, action, embedding):
    out, emb = _recurrent_fn()(params, rng_key, action, embedding)
    return out.replace(value=out.value * jnp.nan), emb
  with jax.debug_nans(True):
    with pytest.raises(Exception, match="non-finite value|NaN|nan"):
      jax.block_until_ready(_run(recurrent_fn=nan_fn))


@pytest.mark.parametrize("kwargs,match", [
    (dict(reward_shape=(B, 1)), r"returned reward of shape \(3, 1\); "
     r"expected \[3\]"),
    (dict(logits_shape=(B, A + 1)), r"returned prior_logits of shape "
     r"\(3, 5\); expected \[3, 4\]"),
    (dict(embedding_fn=lambda e: e[:, :1]), r"embedding leaf of shape "
     r"\(3, 1\); expected \(3, 2\)"),
])
def test_recurrent_fn_wrong_shapes(kwargs, match):
  with pytest.raises(ValueError, match=match):
    _run(recurrent_fn=_recurrent_fn(**kwargs))


@pytest.mark.parametrize("kwargs,match", [
    (dict(value_dtype=jnp.int32), "returned value of dtype int32; expected "
     "floating"),
    (dict(embedding_fn=lambda e: e.astype(jnp.int32)), "embedding leaf of "
     "dtype int32; expected float32"),
    (dict(embedding_fn=lambda e: (e, e)), "embedding with structure"),
    (dict(wrong_type=True), r"recurrent_fn must return \(RecurrentFnOutput"),
])
def test_recurrent_fn_wrong_types(kwargs, match):
  with pytest.raises(TypeError, match=match):
    _run(recurrent_fn=_recurrent_fn(**kwargs))


@pytest.mark.parametrize("value", [0, -1, 1.5])
def test_max_num_considered_actions(value):
  with pytest.raises(ValueError, match="max_num_considered_actions must be"):
    _run("gumbel_muzero_policy", max_num_considered_actions=value)


def test_root_of_wrong_type():
  with pytest.raises(TypeError, match="root must be a RootFnOutput"):
    _run(root=(jnp.zeros((B, A)), jnp.zeros(B)))
