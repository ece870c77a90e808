"""How fast MuZero's conv dynamics learns Connect Four's winning moves.

A supervised stand-in for the start of a MuZero run: the conv
representation and dynamics (``agents.algorithms.muzero``, the Connect Four
recipe's sizes) learn, from transitions of uniformly random games, the
reward of a move (1: it completes four in a row) and, as the recipe's
reconstruction term does, to decode the board before and after it. Adam at
the recipe's learning rate, batch and gradient clipping. Printed: the
held-out reward cross-entropy, and the mean predicted reward of held-out
winning moves, every ``--every`` steps, per seed and per
``--terminal-weights`` (how many times a winning move's reward loss
counts: ``config.terminal_reward_weight``).

  python -m benchmarks.studies.reward_head --terminal-weights 1 4 --seeds 0 1 2
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from agents import config as config_lib
from agents.algorithms import muzero
from agents.algorithms.losses import cross_entropy
from benchmarks.studies.win_detection import live_plies, random_games
import envs


def random_transitions(num_games: int, seed: int):
  """``(obs [N, 6, 7, 2], action [N], reward [N], next_obs [N, 6, 7, 2])``
  of every move of ``num_games`` uniformly random games."""
  state, action, after = random_games(envs.make("connect4"), num_games, seed)
  return live_plies((state.observation, action, after.reward,
                     after.observation), state)


def recipe(terminal_weight: float):
  """The Connect Four MuZero conv recipe's config (the sizes, learning
  rate, batch, clipping and reconstruction weight this study uses)."""
  return config_lib.make_config(
      "connect4", algo="muzero", torso="conv", channels=16,
      reconstruction_weight=10.0, terminal_reward_weight=terminal_weight)


def train(config, seed: int, data, held_out, steps: int, every: int):
  nets = muzero.make_networks(muzero.net_config(config,
                                                envs.make(config.env)))
  support = muzero.make_support(config)
  obs, action, reward, next_obs = data
  params = nets.init(jax.random.PRNGKey(seed), obs[:2])
  optimiser = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                          optax.adam(config.learning_rate))
  opt_state = optimiser.init(params)

  def losses(params, o, a, r, o2):
    latent = nets.represent(params, o)
    rebuilt = muzero.reconstruction_error(nets.decode(params, latent), o)
    latent2, logits = nets.dynamics(params, latent, a)
    rebuilt = rebuilt + muzero.reconstruction_error(
        nets.decode(params, latent2), o2)
    reward_ce = cross_entropy(support.scalar_to_two_hot(r), logits)
    return reward_ce, jnp.mean(rebuilt), logits

  @jax.jit
  def update(params, opt_state, o, a, r, o2):
    def loss(params):
      reward_ce, rebuilt, _ = losses(params, o, a, r, o2)
      weight = jnp.where(r > 0.5, config.terminal_reward_weight, 1.0)
      return (jnp.mean(reward_ce * weight)
              + config.reconstruction_weight * rebuilt)
    grads = jax.grad(loss)(params)
    updates, opt_state = optimiser.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  @jax.jit
  def evaluate(params, o, a, r, o2):
    reward_ce, rebuilt, logits = losses(params, o, a, r, o2)
    predicted = support.logits_to_scalar(logits)
    wins = r > 0.5
    return (jnp.mean(reward_ce), rebuilt,
            jnp.sum(jnp.where(wins, predicted, 0.0)) / jnp.sum(wins))

  rng = np.random.default_rng(seed)
  curve = []
  for step in range(1, steps + 1):
    rows = rng.integers(0, len(action), config.batch_size)
    params, opt_state = update(params, opt_state, obs[rows], action[rows],
                               reward[rows], next_obs[rows])
    if step % every == 0:
      curve.append((step,) + tuple(float(x) for x in evaluate(params,
                                                               *held_out)))
  return curve


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--terminal-weights", type=float, nargs="+",
                 default=[1.0, 4.0])
  p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  p.add_argument("--steps", type=int, default=1500)
  p.add_argument("--every", type=int, default=100)
  p.add_argument("--games", type=int, default=4096)
  a = p.parse_args()
  data = random_transitions(a.games, seed=1000)
  held_out = tuple(x[:4096] for x in random_transitions(256, seed=2000))
  print(f"{len(data[1])} transitions, {np.mean(data[2] > 0.5):.3f} of them "
        "winning moves")
  for weight in a.terminal_weights:
    for seed in a.seeds:
      start = time.time()
      curve = train(recipe(weight), seed, data, held_out, a.steps, a.every)
      print(f"terminal weight {weight:g} seed {seed} ({time.time() - start:.0f} s): "
            + " ".join(f"{s}:{ce:.3f}/{win:.2f}" for s, ce, _, win in curve),
            flush=True)


if __name__ == "__main__":
  main()
