"""Data augmentation by the game's symmetry: each replayed window is
reflected left-right with probability 1/2.

A board game whose rules are unchanged by a reflection (Connect Four,
tic-tac-toe: :class:`envs.base.Mirror`) has, for every window of self-play,
an equally valid reflected window: the observations mirrored, every action
``a`` replaced by its image, the policy targets permuted alike, and the
values and rewards unchanged. AlphaGo Zero (Silver et al. 2017) trained on
such transformations of its positions; here the choice is made per window
and per batch, so each stored window is seen both ways over its reuses.
"""
from __future__ import annotations

from typing import Any, Dict

import jax
import jax.numpy as jnp

from envs.base import Mirror, mirror_of


def check_mirror(env) -> Mirror:
  """``env``'s reflection; a ValueError names the flag if it has none."""
  mirror = mirror_of(env)
  if mirror is None:
    raise ValueError(f"--mirror on needs a game with a left-right symmetry "
                     f"(connect4, tictactoe); {env.name} declares none")
  return mirror


def reflect(batch: Dict[str, Any], mirror: Mirror, flip) -> Dict[str, Any]:
  """The windows of ``batch`` where ``flip [B]`` (bool) is set, reflected.

  ``batch``: ``observation [B, *obs]``, ``actions [B, K]``, ``targets``
  with ``policy [B, K+1, A]`` (and its other targets, left as they are),
  optionally ``next_observations [B, K, *obs]``.
  """
  perm = jnp.asarray(mirror.actions, jnp.int32)                   # [A]

  def pick(x, reflected):
    where = flip.reshape(flip.shape + (1,) * (x.ndim - 1))
    return jnp.where(where, reflected, x)

  out = dict(batch)
  out["observation"] = pick(batch["observation"],
                            jnp.flip(batch["observation"], mirror.axis))
  if "next_observations" in batch:
    out["next_observations"] = pick(
        batch["next_observations"],
        jnp.flip(batch["next_observations"], mirror.axis))
  out["actions"] = pick(batch["actions"], perm[batch["actions"]])
  targets = dict(batch["targets"])
  targets["policy"] = pick(targets["policy"], targets["policy"][..., perm])
  out["targets"] = targets
  return out


def reflect_half(batch: Dict[str, Any], mirror: Mirror,
                 key) -> Dict[str, Any]:
  """``batch`` with each window reflected with probability 1/2 (``key``)."""
  flip = jax.random.bernoulli(key, 0.5, batch["actions"].shape[:1])
  return reflect(batch, mirror, flip)
