"""How far a MuZero agent's learned model is from the true game: the
errors of its unrolled dynamics and what they cost its search.

Positions (:func:`random_positions`): each of ``N`` uniformly random games
from the start is cut at a ply drawn uniformly among its non-terminal
plies. From each, a continuation of ``K = unroll`` uniformly random legal
moves (:func:`random_continuation`; it stops where the game ends) is
played in the true game and unrolled in the model (``agent.root`` then
``agent.recurrent_fn``, as the search does). At unroll step ``k = 1..K``:

* ``reward_error``: ``|predicted reward - true reward|`` of move ``k``,
  both for the player who made it (the env's ``state.reward``, MuZero's
  reward target and what ``recurrent_fn`` predicts).
* ``value_error``: ``|value at the unrolled latent - value at
  represent(true observation k)|``, the model's drift, with the prediction
  network as the yardstick (at non-terminal true states).
* ``policy_tv``: the total variation distance between the two policies
  (the same two latents), each renormalised over the legal moves of the
  true state ``k``.
* Where move ``k`` ended the game: ``win_reward``, the mean predicted
  reward of winning moves (true: 1), ``draw_reward_error`` the mean
  ``|predicted reward|`` of moves ending in a draw, and ``terminal_value``
  the mean ``|value|`` at the latent after the last move (true: 0, the
  absorbing state MuZero's targets use), and ``end_continuation`` the mean
  probability that the episode goes on there, by the model (true: 0;
  ``recurrent_fn``'s discount over the game's, 1 without an episode-end
  head), against ``live_continuation`` where move ``k`` did not end the
  game (true: 1).

Search agreement: at every position the agent's greedy search with its
learned model (``agent.act(..., greedy=True)``) and the same search with
the TRUE game for transitions (:func:`true_rules_agent`: AlphaZero's
``recurrent_fn`` on the agent's own ``represent`` and ``predict``) choose
a move; ``search_agreement`` is the share where they choose the same,
``root_value_diff`` the mean ``|root value difference|`` and
``root_value_bias`` the mean of learned minus true.

Results are a flat dict of floats (NaN for an empty group): the averages
over every measured (position, step), ``<name>_<k>`` per step and, for
Connect Four, ``<name>_<phase>`` by phase of the position
(:data:`agents.evaluation.accuracy.PHASES`).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np

from agents.algorithms.alphazero import AlphaZeroAgent
from agents.evaluation.accuracy import PHASES, phase_index
from agents.training.selfplay import random_action

# Entries measured along the unroll (per step k and averaged).
STEP_METRICS = ("reward_error", "value_error", "policy_tv")


def true_rules_agent(agent) -> AlphaZeroAgent:
  """``agent``'s networks searching with the true game: AlphaZero's root
  (the true state as embedding) and ``recurrent_fn`` (``env.step``, then
  ``represent`` + ``predict`` on the new observation), with ``agent``'s
  config, env, networks and support (its params fit as they are)."""
  return AlphaZeroAgent(config=agent.config, env=agent.env, nets=agent.nets,
                        support=agent.support)


def random_positions(env, key, num: int):
  """Batched env states ``[num]``, each a uniformly random game from the
  start cut at a ply drawn uniformly among its non-terminal plies."""
  steps = env.max_episode_steps
  game_key, cut_key = jax.random.split(key)
  states = jax.vmap(env.init)(jax.random.split(game_key, num))

  def ply(states, k):
    actions = random_action(k, states)
    return jax.vmap(env.step)(states, actions), states

  _, history = jax.lax.scan(ply, states, jax.random.split(cut_key, steps))
  # history: states before ply t, [T, num, ...]; the non-terminal ones are
  # the plies 0 .. length-1.
  length = jnp.sum(~history.terminated, axis=0)                  # [num]
  cut = jnp.floor(jax.random.uniform(jax.random.fold_in(cut_key, 1),
                                     (num,)) * length).astype(jnp.int32)
  return jax.tree.map(lambda h: h[cut, jnp.arange(num)], history)


def random_continuation(env, key, states, unroll: int):
  """``(actions int32 [K, B], next states [K, B], moved bool [K, B])``:
  ``unroll`` = K uniformly random legal moves from ``states [B]``;
  ``moved[k]``: the state before move ``k`` was not terminal (after the
  end the env stands still and the moves do not count)."""

  def ply(states, k):
    actions = random_action(k, states)
    next_states = jax.vmap(env.step)(states, actions)
    return next_states, (actions, next_states, ~states.terminated)

  _, out = jax.lax.scan(ply, states, jax.random.split(key, unroll))
  return out


def legal_policy(logits, legal_action_mask):
  """float ``[B, A]``: softmax of ``logits [B, A]`` over the legal moves
  only (``legal_action_mask`` bool ``[B, A]``)."""
  return jax.nn.softmax(jnp.where(legal_action_mask, logits, -jnp.inf),
                        axis=-1)


def total_variation(p, q):
  """``[B]``: half the L1 distance between distributions ``p, q [B, A]``."""
  return 0.5 * jnp.sum(jnp.abs(p - q), axis=-1)


def unroll_errors(agent, params, key, states, actions, next_states):
  """The model unrolled along ``actions [K, B]`` from ``states [B]``
  against the true ``next_states [K, B]``: dict of ``[K, B]`` arrays
  ``reward_error``, ``value_error``, ``policy_tv``, ``reward`` (predicted)
  ``value`` (at the unrolled latent) and ``continuation`` (the model's
  discount over the game's)."""
  embedding = agent.root(params, states).embedding

  def step(embedding, inputs):
    action, true_states = inputs
    out, embedding = agent.recurrent_fn(params, key, action, embedding)
    truth = agent.root(params, true_states)
    legal = true_states.legal_action_mask
    errors = dict(
        reward_error=jnp.abs(out.reward - true_states.reward),
        value_error=jnp.abs(out.value - truth.value),
        policy_tv=total_variation(legal_policy(out.prior_logits, legal),
                                  legal_policy(truth.prior_logits, legal)),
        reward=out.reward, value=out.value,
        continuation=out.discount / agent.model_discount)
    return embedding, errors

  _, errors = jax.lax.scan(step, embedding, (actions, next_states))
  return errors


@functools.lru_cache(maxsize=16)
def _jitted_measure(agent, num: int, unroll: int):
  """``measure(params, key) -> dict of arrays`` for ``agent``, jitted
  once per (agent, num, unroll)."""
  true_agent = true_rules_agent(agent)
  env = agent.env

  def measure(params, key):
    position_key, continuation_key, search_key = jax.random.split(key, 3)
    states = random_positions(env, position_key, num)
    actions, next_states, moved = random_continuation(
        env, continuation_key, states, unroll)
    errors = unroll_errors(agent, params, search_key, states, actions,
                           next_states)
    learned = agent.act(params, search_key, states, greedy=True)
    true = true_agent.act(params, search_key, states, greedy=True)
    return dict(
        errors, moved=moved, terminated=next_states.terminated,
        true_reward=next_states.reward, stones=states.step_count,
        learned_action=learned.action, true_action=true.action,
        learned_value=learned.search_tree.summary().value,
        true_value=true.search_tree.summary().value)

  return jax.jit(measure)


def _mean(values, mask) -> float:
  """The mean of ``values`` where ``mask`` (NaN if nowhere)."""
  values = np.asarray(values, np.float64)
  mask = np.broadcast_to(np.asarray(mask, bool), values.shape)
  return float(values[mask].mean()) if mask.any() else float("nan")


def summarize(raw: Dict[str, np.ndarray], phases: bool) -> Dict[str, float]:
  """The flat report of the module docstring from :func:`_jitted_measure`'s
  arrays (``[K, N]`` along the unroll, ``[N]`` per position); ``phases``:
  also by phase of the game (Connect Four)."""
  moved = np.asarray(raw["moved"], bool)                      # [K, N]
  ended = moved & np.asarray(raw["terminated"], bool)         # move k ended
  live = moved & ~np.asarray(raw["terminated"], bool)         # state k goes on
  masks = dict(reward_error=moved, value_error=live, policy_tv=live)
  agree = np.asarray(raw["learned_action"]) == np.asarray(raw["true_action"])
  diff = (np.asarray(raw["learned_value"], np.float64)
          - np.asarray(raw["true_value"], np.float64))
  win = ended & (np.asarray(raw["true_reward"]) > 0)
  draw = ended & (np.asarray(raw["true_reward"]) == 0)
  out = dict(positions=float(moved.shape[1]), unroll=float(moved.shape[0]),
             search_agreement=_mean(agree, True),
             root_value_diff=_mean(np.abs(diff), True),
             root_value_bias=_mean(diff, True),
             win_reward=_mean(raw["reward"], win),
             win_moves=float(win.sum()),
             draw_reward_error=_mean(np.abs(raw["reward"]), draw),
             draw_moves=float(draw.sum()),
             terminal_value=_mean(np.abs(raw["value"]), ended),
             end_continuation=_mean(raw["continuation"], ended),
             live_continuation=_mean(raw["continuation"], live))
  for name in STEP_METRICS:
    out[name] = _mean(raw[name], masks[name])
    for k in range(moved.shape[0]):
      out[f"{name}_{k + 1}"] = _mean(raw[name][k], masks[name][k])
  if phases:
    phase = phase_index(raw["stones"])                        # [N]
    for i, (label, _, _) in enumerate(PHASES):
      here = phase == i
      out[f"positions_{label}"] = float(here.sum())
      out[f"search_agreement_{label}"] = _mean(agree, here)
      out[f"root_value_diff_{label}"] = _mean(np.abs(diff), here)
      for name in STEP_METRICS:
        out[f"{name}_{label}"] = _mean(raw[name], masks[name] & here)
  return out


def model_errors(agent, params, env, num_positions: int, seed: int = 0,
                 unroll: int = 5, simulations: Optional[int] = None
                 ) -> Dict[str, float]:
  """The errors of ``agent``'s model against the true ``env`` on
  ``num_positions`` random positions of ``seed`` (see the module
  docstring), unrolled ``unroll`` moves, its search and the true-rules
  search with ``simulations`` (default: the agent's config's)."""
  if num_positions < 1 or unroll < 1:
    raise ValueError(f"num_positions and unroll: expected positive "
                     f"integers, got {num_positions} and {unroll}")
  if env.num_players != 2:
    raise ValueError(f"model_errors needs a two-player game, got "
                     f"{env.name}")
  config = agent.config
  if simulations is not None:
    config = dataclasses.replace(config, num_simulations=int(simulations))
  agent = dataclasses.replace(agent, config=config, env=env)
  raw = _jitted_measure(agent, int(num_positions), int(unroll))(
      params, jax.random.PRNGKey(seed))
  return summarize(jax.device_get(raw), phases=env.name == "connect4")


def _fmt(x: float) -> str:
  return "n/a" if np.isnan(x) else f"{x:.3f}"


def format_model_errors(results: Dict[str, float], label: str) -> str:
  """A short readable report of :func:`model_errors`' ``results``."""
  unroll = int(results["unroll"])
  r = results
  lines = [f"{label}: learned model against the true game on "
           f"{int(r['positions'])} random positions, {unroll}-move random "
           "continuations",
           f"  {'step':<14}" + "".join(f"{k:>8}" for k in range(1, unroll + 1))
           + f"{'all':>8}"]
  for name in STEP_METRICS:
    lines.append(f"  {name:<14}"
                 + "".join(f"{_fmt(r[f'{name}_{k}']):>8}"
                           for k in range(1, unroll + 1))
                 + f"{_fmt(r[name]):>8}")
  lines.append(f"  game end: predicted reward of winning moves "
               f"{_fmt(r['win_reward'])} (true 1, {int(r['win_moves'])} "
               f"moves), |reward| of drawing moves "
               f"{_fmt(r['draw_reward_error'])} ({int(r['draw_moves'])}), "
               f"|value| after the end {_fmt(r['terminal_value'])} (true 0)")
  lines.append(f"  episode goes on: after the end "
               f"{_fmt(r['end_continuation'])} (true 0), elsewhere "
               f"{_fmt(r['live_continuation'])} (true 1)")
  lines.append(f"  search: same move as the true-rules search "
               f"{_fmt(r['search_agreement'])}, |root value difference| "
               f"{_fmt(r['root_value_diff'])} (learned - true "
               f"{r['root_value_bias']:+.3f})")
  for label_, _, _ in PHASES:
    if f"positions_{label_}" in r:
      lines.append(
          f"  {label_:<8} ({int(r[f'positions_{label_}'])} positions): "
          f"agreement {_fmt(r[f'search_agreement_{label_}'])}, "
          + ", ".join(f"{n} {_fmt(r[f'{n}_{label_}'])}"
                      for n in STEP_METRICS + ("root_value_diff",)))
  return "\n".join(lines)
