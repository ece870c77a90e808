"""What the agents tests share: the tiny configs (plumbing, not learning),
run directories, game states and MuZero loss batches to test with,
comparisons of trees of arrays and of directories, the checkout's root."""
import os

import jax
import jax.numpy as jnp
import numpy as np

# The checkout (the working directory of the tests' subprocesses).
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def tiny_config(overrides):
  """The tests' tiny config (plumbing, not learning), with ``overrides``
  (``env``: the game, default tic-tac-toe)."""
  from agents import config as config_lib  # pylint: disable=g-import-not-at-top
  base = dict(num_simulations=4, num_envs=8, selfplay_steps=8,
              batch_size=16, updates_per_iter=8, width=32, latent_size=16,
              repr_blocks=1, dyn_blocks=1, pred_blocks=1, value_bins=11,
              learning_rate=3e-3, steps=4, eval_every=1000, eval_games=4,
              final_eval_games=4, unroll_steps=2, td_steps=4,
              replay_capacity=32)
  base.update(overrides)
  return config_lib.make_config(base.pop("env", "tictactoe"), **base)


def tiny(env_name="tictactoe", **kw):
  """:func:`tiny_config` of ``env_name`` with the fields ``kw``."""
  return tiny_config(dict(kw, env=env_name))


# ``alive [B, K+1]`` of a tiny MuZero loss batch (B = 4, K = 2): windows
# inside their episode to the end, past it from step 2, from step 1.
LOSS_ALIVE = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]], bool)


def tiny_muzero(**kw):
  """``(config, agent, params)`` of tiny tic-tac-toe MuZero (K = 2) with
  the config fields ``kw``."""
  import envs  # pylint: disable=g-import-not-at-top
  from agents import algorithms  # pylint: disable=g-import-not-at-top
  config = tiny(**kw)
  env = envs.make(config.env)
  agent = algorithms.make_agent(config, env)
  obs = env.init(jax.random.PRNGKey(0)).observation[None]
  return config, agent, agent.nets.init(jax.random.PRNGKey(1), obs)


def run_iterations(config, n):
  """``(state, losses)`` after ``n`` training iterations of ``config``
  from a fresh state, with the loss of each."""
  import envs  # pylint: disable=g-import-not-at-top
  from agents import algorithms  # pylint: disable=g-import-not-at-top
  from agents.training.state import init_train_state  # pylint: disable=g-import-not-at-top
  from agents.training.step import jitted_train_step  # pylint: disable=g-import-not-at-top
  agent = algorithms.make_agent(config, envs.make(config.env))
  state = init_train_state(agent)
  step = jitted_train_step(agent)
  losses = []
  for _ in range(n):
    state, metrics = step(state)
    losses.append(float(metrics["loss"]))
  return state, losses


def sigmoid_cross_entropy(logits, target):
  """The sigmoid cross-entropy by its definition, in float64."""
  p = 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))
  return -(target * np.log(p) + (1 - target) * np.log(1 - p))


def params_equal(a, b):
  """Whether two trees of arrays have the same leaves, bit for bit."""
  la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  return len(la) == len(lb) and all(
      np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def files(directory):
  """``{relative path: bytes}`` of every file under ``directory``."""
  out = {}
  for root, _, names in os.walk(directory):
    for n in names:
      p = os.path.join(root, n)
      out[os.path.relpath(p, directory)] = open(p, "rb").read()
  return out


def make_run(out, config, iteration=0):
  """A run directory as agents.train leaves it after ``iteration``
  iterations, with untrained params (the tests check plumbing, not play
  strength); returns its state."""
  import envs  # pylint: disable=g-import-not-at-top
  from agents import algorithms  # pylint: disable=g-import-not-at-top
  from agents.runs import checkpoints  # pylint: disable=g-import-not-at-top
  from agents.runs import run_dir  # pylint: disable=g-import-not-at-top
  from agents.training import parallel  # pylint: disable=g-import-not-at-top
  from agents.training.state import sharded_init_state  # pylint: disable=g-import-not-at-top
  run_dir.prepare_new_run(str(out), config)
  agent = algorithms.make_agent(config, envs.make(config.env))
  state = sharded_init_state(agent, parallel.make_mesh(1))
  # Params that differ from a fresh run's (which a loader could return
  # without reading the checkpoint).
  params = jax.tree.map(lambda x: 1.5 * x + 0.01, state.params)
  state = state._replace(params=params, iteration=jnp.int32(iteration))
  checkpoints.save(os.path.join(out, run_dir.CHECKPOINT_DIR), state,
                   dict(iteration=iteration, config=config.to_dict(),
                        devices=1))
  return state


def random_moves(env, states, num, rng):
  """``num`` uniformly random legal moves from each of the batched
  ``states``, drawn with the numpy ``rng``: ``(actions, reached)``, the
  ``num`` actions (int32 ``[B]`` each) and the states each reaches."""
  actions, reached = [], []
  for _ in range(num):
    legal = np.asarray(states.legal_action_mask)
    action = jnp.asarray([rng.choice(np.flatnonzero(m)) for m in legal],
                         jnp.int32)
    states = jax.vmap(env.step)(states, action)
    actions.append(action)
    reached.append(states)
  return actions, reached


def random_states(env, num, plies, seed=0):
  """``num`` states after ``plies`` uniformly random moves (batched)."""
  states = jax.vmap(env.init)(jax.random.split(jax.random.PRNGKey(0), num))
  _, reached = random_moves(env, states, plies,
                            np.random.default_rng(seed))
  return reached[-1] if reached else states


def unrolled_windows(config, alive, seed=0):
  """A MuZero loss's batch of ``config``'s game (K = ``config.unroll_steps``):
  B = len(alive) windows of random play from positions after one random
  move (not the empty board; ``seed`` picks the moves): ``observation``,
  ``next_observations [B, K, ...]`` (float32), ``actions``, ``targets``
  with ``alive [B, K+1]``."""
  import envs  # pylint: disable=g-import-not-at-top
  env = envs.make(config.env)
  b, k = alive.shape[0], config.unroll_steps
  rng = np.random.default_rng(seed)
  states = random_states(env, b, plies=1, seed=seed)
  actions, reached = random_moves(env, states, k, rng)
  obs = [x.observation.astype(jnp.float32) for x in [states] + reached]
  targets = dict(
      value=jnp.asarray(rng.uniform(-1, 1, (b, k + 1)), jnp.float32),
      reward=jnp.zeros((b, k + 1), jnp.float32),
      terminal=jnp.zeros((b, k + 1), bool),
      policy=jax.nn.softmax(jnp.asarray(
          rng.normal(size=(b, k + 1, env.num_actions)), jnp.float32)),
      alive=jnp.asarray(alive))
  return dict(observation=obs[0], next_observations=jnp.stack(obs[1:], 1),
              actions=jnp.stack(actions, 1), targets=targets)


def scramble_past_the_end(batch, alive):
  """``batch`` with the next observations of the steps past the end of the
  episode (``~alive [B, K+1]`` at ``k >= 1``) replaced by uniform noise:
  a loss that masks those steps must not see the difference."""
  dead = ~alive[:, 1:]
  noise = jax.random.uniform(jax.random.PRNGKey(3),
                             batch["next_observations"].shape)
  mask = jnp.asarray(dead).reshape(dead.shape + (1,) * (noise.ndim - 2))
  return dict(batch, next_observations=jnp.where(
      mask, noise, batch["next_observations"]))


def assert_only_the_term_added(plain_agent, plain_params, agent, params,
                               batch, term, weight):
  """A MuZero model-loss term at ``weight`` against the same agent without
  it (``plain_*``): the params they share are equal, every other metric is
  unchanged and the loss grows by ``weight`` times the metric ``term``
  (the plain agent gets ``batch`` without ``next_observations``)."""
  assert params_equal({n: params[n] for n in plain_params}, plain_params)
  plain = {k: v for k, v in batch.items() if k != "next_observations"}
  loss0, m0 = plain_agent.make_loss()(plain_params, plain)
  loss, m = agent.make_loss()(params, batch)
  assert set(m0) == {"loss", "policy_loss", "value_loss", "reward_loss"}
  for name in m0:
    if name != "loss":
      assert float(m[name]) == float(m0[name]), name
  np.testing.assert_allclose(loss - weight * m[term], loss0, rtol=1e-6)
