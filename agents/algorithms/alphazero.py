"""AlphaZero (Silver et al. 2018): MuZero's networks without a learned
model; the search steps the true environment.

The root embedding is the TRUE environment state; ``recurrent_fn`` steps
the environment (vmapped) and evaluates ``predict(represent(obs))`` at the
new state; reward and discount come from the environment (discount -1
between plies of a two-player game, 0 once terminated, where the value is 0
too); illegal actions get a very low prior. The networks are MuZero's (its
dynamics is initialised but never used), the loss is MuZero's with K = 0:
policy and value at ``obs_t``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

import mcts
from agents.algorithms.muzero import (MuZeroAgent, make_networks,
                                      make_support, net_config)
from agents.config import Config

ILLEGAL_LOGIT = -1e9


class AlphaZeroAgent(MuZeroAgent):
  """:class:`~agents.algorithms.muzero.MuZeroAgent` whose search carries
  environment states ``[B]`` and steps the environment."""

  def root_embedding(self, states, latent):
    del latent
    return states

  def recurrent_fn(self, params, rng_key, action, embedding):
    """One true environment step of states ``[B]`` by ``action [B]``."""
    del rng_key
    states = jax.vmap(self.env.step)(embedding, action)
    logits, value = self.predict(
        params, self.nets.represent(params, states.observation))
    logits = jnp.where(states.legal_action_mask, logits, ILLEGAL_LOGIT)
    done = states.terminated
    out = mcts.RecurrentFnOutput(
        reward=states.reward,
        discount=jnp.where(done, 0.0, self.model_discount),
        prior_logits=logits,
        value=jnp.where(done, 0.0, value))
    return out, states


def make_agent(config: Config, env) -> AlphaZeroAgent:
  return AlphaZeroAgent(config=config, env=env,
                        nets=make_networks(net_config(config, env)),
                        support=make_support(config))
