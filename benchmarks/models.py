"""Benchmark models, usable with both `mcts` and `mctx`.

A `Model` is two pure functions on a `[B]` batch:

* `step(params, embedding, action) -> embedding`: the dynamics;
* `predict(params, embedding) -> dict(reward, discount, prior_logits, value)`:
  the heads, evaluated at the new node (reward and discount are those of the
  edge arriving at it).

`root_output` and `recurrent_fn` wrap them in the `RootFnOutput` /
`RecurrentFnOutput` classes of whichever library module is passed in, so the
two libraries search identical roots with identical models.
"""
import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

EMBEDDING_SIZE = 64
HIDDEN_SIZE = 256
DISCOUNT = 0.99
# Small rewards: returns that grow along a path turn pUCT trees into lines.
REWARD_SCALE = 0.1


@dataclasses.dataclass(frozen=True)
class Model:
  """A model for `num_actions` actions; `init_embedding(key, B)` gives roots."""
  name: str
  num_actions: int
  params: Any
  init_embedding: Callable[[jax.Array, int], Any]
  step: Callable[[Any, Any, jax.Array], Any]
  predict: Callable[[Any, Any], dict]


# ---- tiny: a hash-based model ------------------------------------------------
def _mix(x):
  """A uint32 -> uint32 avalanche hash (lowbias32, xor-shift-multiply)."""
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x7FEB352D)
  x = x ^ (x >> 15)
  x = x * jnp.uint32(0x846CA68B)
  return x ^ (x >> 16)


def _uniform(h):
  """uint32 hash -> float32 uniform in [0, 1)."""
  return (h >> 8).astype(jnp.float32) * (1.0 / (1 << 24))


def _normalish(h):
  """uint32 hash -> float32 with mean 0 and variance 1 (sum of two
  independent 16-bit uniforms, i.e. triangular, scaled)."""
  lo = (h & 0xFFFF).astype(jnp.float32) / 65536.0
  hi = (h >> 16).astype(jnp.float32) / 65536.0
  return (lo + hi - 1.0) * jnp.sqrt(6.0).astype(jnp.float32)


def _tiny_step(params, state, action):
  """Next state id = hash(state, action), kept in int32's positive range."""
  del params
  h = _mix(_mix(state.astype(jnp.uint32)) ^
           (action.astype(jnp.uint32) + 1) * jnp.uint32(0x9E3779B9))
  return (h & 0x7FFFFFFF).astype(jnp.int32)


def _tiny_predict(params, state, num_actions):
  """Reward in [-0.1, 0.1], value in [-1, 1] and prior logits (mean 0,
  variance 1) from hashes of the state."""
  del params
  h = _mix(state.astype(jnp.uint32))
  actions = jnp.arange(num_actions, dtype=jnp.uint32)
  prior_h = _mix(h[:, None] ^ (actions[None, :] * jnp.uint32(0x85EBCA6B)))
  return dict(
      reward=REWARD_SCALE * (2.0 * _uniform(_mix(h ^ jnp.uint32(0x1))) - 1.0),
      discount=jnp.full(state.shape, DISCOUNT, jnp.float32),
      prior_logits=_normalish(prior_h),
      value=2.0 * _uniform(_mix(h ^ jnp.uint32(0x2))) - 1.0)


def tiny_model(num_actions: int, seed: int = 0) -> Model:
  """Cheap, deterministic model: the embedding is an int32 state id `[B]`."""
  del seed
  return Model(
      name="tiny", num_actions=num_actions, params={},
      init_embedding=lambda key, b: jax.random.randint(
          key, (b,), 0, jnp.iinfo(jnp.int32).max, jnp.int32),
      step=_tiny_step,
      predict=lambda params, state: _tiny_predict(params, state, num_actions))


# ---- mlp: a dm-haiku model ---------------------------------------------------
def _mlp_transform(num_actions):
  """hk.multi_transform of (step, predict) for an MLP MuZero-style model."""
  import haiku as hk  # pylint: disable=g-import-not-at-top

  def build():
    dynamics = hk.nets.MLP([HIDDEN_SIZE, EMBEDDING_SIZE], name="dynamics")
    reward_head = hk.Linear(1, name="reward")
    value_head = hk.Linear(1, name="value")
    policy_head = hk.Linear(num_actions, name="policy")

    def step(embedding, action):
      x = jnp.concatenate(
          [embedding, jax.nn.one_hot(action, num_actions)], axis=-1)
      # tanh keeps the embedding bounded when fed back hundreds of times.
      return jnp.tanh(dynamics(x))

    def predict(embedding):
      batch = embedding.shape[:1]
      return dict(
          reward=REWARD_SCALE * jnp.tanh(reward_head(embedding)[:, 0]),
          discount=jnp.full(batch, DISCOUNT, embedding.dtype),
          prior_logits=policy_head(embedding),
          value=jnp.tanh(value_head(embedding)[:, 0]))

    def init(embedding, action):
      return predict(step(embedding, action))

    return init, (step, predict)

  return hk.without_apply_rng(hk.multi_transform(build))


def mlp_model(num_actions: int, seed: int = 0) -> Model:
  """MLP model: embedding float32 `[B, 64]`, dynamics 2-layer relu MLP
  (256 -> 64) on concat(embedding, one_hot(action)), linear heads."""
  transformed = _mlp_transform(num_actions)
  dummy = jnp.zeros((1, EMBEDDING_SIZE), jnp.float32)
  params = transformed.init(jax.random.PRNGKey(seed), dummy,
                            jnp.zeros((1,), jnp.int32))
  step, predict = transformed.apply
  return Model(
      name="mlp", num_actions=num_actions, params=params,
      init_embedding=lambda key, b: jax.random.normal(
          key, (b, EMBEDDING_SIZE), jnp.float32),
      step=step, predict=predict)


MODELS = {"tiny": tiny_model, "mlp": mlp_model}


# ---- glue with a search library ----------------------------------------------
def root_output(module, model: Model, rng_key, batch_size: int):
  """`module.RootFnOutput` for `batch_size` random root states."""
  embedding = model.init_embedding(rng_key, batch_size)
  out = model.predict(model.params, embedding)
  return module.RootFnOutput(prior_logits=out["prior_logits"],
                             value=out["value"], embedding=embedding)


def recurrent_fn(module, model: Model):
  """The model as a `recurrent_fn` returning `module.RecurrentFnOutput`."""
  def fn(params, rng_key, action, embedding):
    del rng_key
    embedding = model.step(params, embedding, action)
    out = module.RecurrentFnOutput(**model.predict(params, embedding))
    return out, embedding
  return fn


def model_loop(model: Model, num_steps: int):
  """`f(params, embedding, actions [num_steps, B]) -> checksum`: the model
  alone, `num_steps` recurrent calls feeding the embedding back. All outputs
  feed a checksum so that XLA cannot drop any head."""
  def f(params, embedding, actions):
    def body(i, carry):
      embedding, checksum = carry
      embedding = model.step(params, embedding, actions[i])
      out = model.predict(params, embedding)
      checksum = (checksum + out["reward"] + out["discount"] * out["value"]
                  + jnp.sum(out["prior_logits"], axis=-1))
      return embedding, checksum
    checksum = jnp.zeros(actions.shape[1:], jnp.float32)
    return jax.lax.fori_loop(0, num_steps, body, (embedding, checksum))[1]
  return f
