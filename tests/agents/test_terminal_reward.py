"""The weight of MuZero's reward loss on the transitions that end an
episode (``config.terminal_reward_weight``, agents/algorithms/muzero.py):
the targets mark those transitions, the weight scales exactly their terms,
validation and the flag; one slow learning check."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from agents import algorithms
from agents import config as config_lib
from agents import train_flags
from agents.evaluation import model_errors as model_errors_lib
from agents.training import targets as targets_lib
from agents.training.state import init_train_state
from agents.training.step import jitted_train_step
from tests.agents.helpers import random_states, tiny


def test_targets_mark_the_transition_that_ends_the_episode():
  """K = 3, an episode ending at window step 1 (its last move) and the next
  one at step 3: only the transition into unrolled state 2 ends the episode
  of t; the later end belongs to another episode."""
  config = tiny("tictactoe", unroll_steps=3, td_steps=2)
  env = envs.make("tictactoe")
  done = jnp.array([[0, 1, 0, 1, 0, 0]], bool)
  out = targets_lib.compute_targets(config, env, dict(
      done=done, reward=jnp.array([[0, 1, 0, 1, 0, 0]], jnp.float32),
      value=jnp.zeros((1, 6)), policy=jnp.ones((1, 6, 9)) / 9))
  np.testing.assert_array_equal(out["terminal"][0], [0, 0, 1, 0])
  np.testing.assert_allclose(out["reward"][0], [0, 0, 1, 0])


def _reward_loss(weight, terminal):
  """MuZero's reward loss (K = 2, tic-tac-toe, B = 3) at fixed params and
  batch, with ``terminal [3, 3]`` and ``terminal_reward_weight``."""
  config = tiny(terminal_reward_weight=weight)
  env = envs.make(config.env)
  agent = algorithms.make_agent(config, env)
  states = random_states(env, 3, plies=1)
  params = agent.nets.init(jax.random.PRNGKey(1), states.observation)
  rng = np.random.default_rng(0)
  batch = dict(
      observation=states.observation,
      actions=jnp.asarray([[0, 1], [2, 3], [5, 6]], jnp.int32),
      targets=dict(
          value=jnp.asarray(rng.uniform(-1, 1, (3, 3)), jnp.float32),
          reward=jnp.asarray(rng.choice([-1.0, 0.0, 1.0], (3, 3)),
                             jnp.float32),
          terminal=jnp.asarray(terminal, bool),
          policy=jnp.full((3, 3, 9), 1 / 9, jnp.float32),
          alive=jnp.ones((3, 3), bool)))
  _, metrics = agent.make_loss()(params, batch)
  return float(metrics["reward_loss"])


def test_weight_scales_the_terms_of_terminal_transitions_only():
  """The reward loss is the mean of ``w_ik CE_ik`` with ``w = W`` where
  terminal: W times the unweighted loss when every transition is terminal,
  unchanged when none is, and linear in W in between."""
  none, every = np.zeros((3, 3), bool), np.ones((3, 3), bool)
  some = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]], bool)
  base = _reward_loss(1.0, none)
  assert base > 0
  np.testing.assert_allclose(_reward_loss(4.0, none), base, rtol=1e-6)
  np.testing.assert_allclose(_reward_loss(4.0, every), 4 * base, rtol=1e-5)
  l1, l2, l5 = (_reward_loss(w, some) for w in (1.0, 2.0, 5.0))
  assert l2 > l1
  np.testing.assert_allclose(l5 - l1, 4 * (l2 - l1), rtol=1e-4)
  # The terms of the two terminal transitions alone, from the two runs:
  # (l2 - l1) * 6 = their sum, which the all-terminal loss bounds.
  assert 0 < (l2 - l1) * 6 < 6 * base


@pytest.mark.parametrize("overrides, match", [
    (dict(terminal_reward_weight=0.0), "must be > 0"),
    (dict(terminal_reward_weight=-2.0), "must be > 0"),
    (dict(terminal_reward_weight=5.0, algo="alphazero"), "needs algo"),
    (dict(terminal_reward_weight=5.0, algo="stochastic_muzero"),
     "needs algo")])
def test_bad_weights_are_refused(overrides, match):
  with pytest.raises(ValueError, match=f"terminal_reward_weight.*{match}"):
    config_lib.make_config("tictactoe", **overrides)


def test_flag_sets_the_weight():
  args = train_flags.build_parser().parse_args(
      ["--algo", "muzero", "--terminal-reward-weight", "8"])
  config = train_flags.config_from_args(args)
  assert config.terminal_reward_weight == 8.0
  # An old run's run.json (no such field) reads as unweighted.
  old = {k: v for k, v in config.to_dict().items()
         if k != "terminal_reward_weight"}
  assert config_lib.Config.from_dict(old).terminal_reward_weight == 1.0


# --------------------------------------------------------- learning (slow)
def _win_reward(weight):
  """The model's predicted reward of winning moves (true 1) after a short
  tic-tac-toe MuZero run with ``terminal_reward_weight`` = ``weight``,
  on 400 random positions (``model_errors``)."""
  config = tiny(terminal_reward_weight=weight, steps=60)
  env = envs.make(config.env)
  agent = algorithms.make_agent(config, env)
  state, step = init_train_state(agent), jitted_train_step(agent)
  for _ in range(config.steps):
    state, _ = step(state)
  errors = model_errors_lib.model_errors(agent, state.params, env, 400)
  assert errors["win_moves"] > 50
  return errors["win_reward"]


@pytest.mark.slow
def test_weighting_the_last_move_teaches_the_model_to_see_wins():
  """The same seed and run, unweighted and with W = 10: the weighted model
  predicts a clearly larger reward for winning moves (on the CPU: 0.23
  unweighted, 0.68 weighted; 110 s for both runs)."""
  plain, weighted = _win_reward(1.0), _win_reward(10.0)
  assert weighted > plain + 0.15, (plain, weighted)
