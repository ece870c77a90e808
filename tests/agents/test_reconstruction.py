"""MuZero's observation reconstruction (agents/algorithms/muzero.py,
``config.reconstruction_weight``): the term against a hand computation,
masked steps, weight 0 unchanged, the batch's next observations,
validation and the flag. One slow learning test: the unrolled latents
learn to decode into the boards actually reached."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import envs
from agents import algorithms
from agents import config as config_lib
from agents import train as train_lib
from agents import train_flags
from tests.agents.helpers import (assert_only_the_term_added, LOSS_ALIVE,
                                  params_equal, scramble_past_the_end,
                                  sigmoid_cross_entropy, tiny, tiny_muzero,
                                  unrolled_windows)

WEIGHT = 0.5


def _setup(weight=WEIGHT, **kw):
  """``(config, agent, params)`` of tiny tic-tac-toe MuZero (K = 2)."""
  return tiny_muzero(reconstruction_weight=weight, **kw)


def test_term_equals_a_hand_computation():
  config, agent, params = _setup()
  batch = unrolled_windows(config, LOSS_ALIVE)
  loss, m = agent.make_loss()(params, batch)
  nets = agent.nets
  seen = [batch["observation"]] + [batch["next_observations"][:, k]
                                   for k in range(config.unroll_steps)]
  latent, total = nets.represent(params, batch["observation"]), 0.0
  for k, obs in enumerate(seen):
    if k > 0:
      latent, _ = nets.dynamics(params, latent, batch["actions"][:, k - 1])
    logits = np.asarray(nets.decode(params, latent))
    # One logit per feature of the flattened observation.
    assert logits.shape == (4, int(np.prod(obs.shape[1:])))
    per_row = sigmoid_cross_entropy(
        logits, np.asarray(obs).reshape(4, -1)).mean(-1)
    total += np.sum(per_row * LOSS_ALIVE[:, k])
  # The mean over the steps inside the episode of t, o_t's included.
  np.testing.assert_allclose(m["reconstruction_loss"],
                             total / LOSS_ALIVE.sum(), rtol=1e-5)
  np.testing.assert_allclose(
      loss, m["policy_loss"] + config.value_loss_weight * m["value_loss"]
      + m["reward_loss"] + WEIGHT * m["reconstruction_loss"], rtol=1e-6)


def test_steps_past_the_episode_end_count_nothing():
  config, agent, params = _setup()
  loss_fn = agent.make_loss()
  batch = unrolled_windows(config, LOSS_ALIVE)
  other = scramble_past_the_end(batch, LOSS_ALIVE)
  term = jax.jit(lambda p, b: loss_fn(p, b)[1]["reconstruction_loss"])
  grad = jax.jit(jax.grad(term))
  assert float(term(params, batch)) == float(term(params, other))
  assert params_equal(grad(params, batch), grad(params, other))
  # The decoder and the dynamics learn from it; the value head does not.
  g = grad(params, batch)
  assert float(jnp.abs(g["decoder_out"]["w"]).max()) > 0
  assert float(jnp.abs(g["dyn_out"]["w"]).max()) > 0
  assert float(jnp.abs(g["value_head"]["w"]).max()) == 0


def test_weight_zero_leaves_params_and_loss_unchanged():
  _, agent0, params0 = _setup(weight=0.0)
  config, agent, params = _setup()
  assert not any(n.startswith("decoder") for n in params0)
  assert {"decoder_out", "decoder/linear"} <= set(params)
  assert_only_the_term_added(agent0, params0, agent, params,
                             unrolled_windows(config, LOSS_ALIVE),
                             "reconstruction_loss", WEIGHT)


def test_without_unroll_only_the_root_is_reconstructed():
  config, agent, params = _setup(unroll_steps=0)
  assert not agent.reads_next_observations
  unrolled = unrolled_windows(tiny(), LOSS_ALIVE)
  batch = dict(observation=unrolled["observation"],
               actions=unrolled["actions"][:, :0],
               targets=jax.tree.map(lambda x: x[:, :1], unrolled["targets"]))
  _, m = agent.make_loss()(params, batch)
  logits = np.asarray(agent.nets.decode(
      params, agent.nets.represent(params, batch["observation"])))
  np.testing.assert_allclose(m["reconstruction_loss"], sigmoid_cross_entropy(
      logits, np.asarray(batch["observation"]).reshape(4, -1)).mean(),
                             rtol=1e-5)


def test_validation_and_flag(tmp_path, capsys):
  on = tiny(reconstruction_weight=1.0)
  assert algorithms.make_agent(on, envs.make(on.env)).reads_next_observations
  assert config_lib.make_config("connect4").reconstruction_weight == 0.0
  with pytest.raises(ValueError, match=r"reconstruction_weight \(--reconst"
                     r"ruction-weight\) must be >= 0"):
    tiny(reconstruction_weight=-1.0)
  for env_name, algo in (("tictactoe", "alphazero"),
                         ("2048", "stochastic_muzero")):
    with pytest.raises(ValueError, match=r"reconstruction_weight \(--recon"
                       r"struction-weight\) needs algo 'muzero'"):
      config_lib.make_config(env_name, algo=algo, reconstruction_weight=1.0)
  parse = train_flags.build_parser().parse_args
  c = train_flags.config_from_args(parse(["--algo", "muzero",
                                          "--reconstruction-weight", "2"]))
  assert c.reconstruction_weight == 2.0
  assert train_lib.main(["--algo", "alphazero", "--reconstruction-weight",
                         "1", "--out", str(tmp_path / "a")]) == 2
  assert "reconstruction_weight (--reconstruction-weight)" in (
      capsys.readouterr().err)
  helps = {a.dest: a.help for a in train_flags.build_parser()._actions}  # pylint: disable=protected-access
  assert "(default 0)" in helps["reconstruction_weight"]
  old = {k: v for k, v in c.to_dict().items()
         if k != "reconstruction_weight"}
  assert config_lib.Config.from_dict(old).reconstruction_weight == 0.0


@pytest.mark.slow
def test_unrolled_latents_learn_to_decode_into_the_boards_reached():
  """The loss alone, minimised by Adam on 512 windows of random tic-tac-toe
  play: the latent unrolled K = 2 moves from a position then decodes,
  every feature rounded, into the board those moves reach in nearly all
  of 256 other windows (on CPU: 0.99 after 300 steps), where the untrained
  model gets nearly none right."""
  config = tiny(reconstruction_weight=1.0, width=64, latent_size=32)
  agent = algorithms.make_agent(config, envs.make(config.env))
  alive = lambda n: np.ones((n, config.unroll_steps + 1), bool)
  train, held_out = (unrolled_windows(config, alive(512), seed=1),
                     unrolled_windows(config, alive(256), seed=2))
  params = agent.nets.init(jax.random.PRNGKey(0), train["observation"][:1])
  loss_fn = agent.make_loss()
  adam = optax.adam(3e-3)

  @jax.jit
  def update(params, opt_state):
    grads = jax.grad(lambda p: loss_fn(p, train)[0])(params)
    updates, opt_state = adam.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state

  def exact_boards(params):
    latent = agent.nets.represent(params, held_out["observation"])
    for k in range(config.unroll_steps):
      latent, _ = agent.nets.dynamics(params, latent,
                                      held_out["actions"][:, k])
    decoded = np.asarray(agent.nets.decode(params, latent)) > 0
    reached = np.asarray(held_out["next_observations"][:, -1]) > 0.5
    return np.mean(np.all(decoded == reached.reshape(256, -1), axis=-1))

  before, opt_state = exact_boards(params), adam.init(params)
  for _ in range(300):
    params, opt_state = update(params, opt_state)
  after = exact_boards(params)
  assert before < 0.1 and after >= 0.9, (before, after)
