"""What the agents tests share: the tiny configs (plumbing, not learning),
comparisons of trees of arrays and of directories, the checkout's root."""
import os

import jax
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
