"""Pure-JAX environments behind one small protocol (see :mod:`envs.base`).

    env = envs.make("tictactoe")  # or "connect4", "catch", "2048", "pgx:go_9x9"
    state = jax.vmap(env.init)(jax.random.split(key, 8))
    state = jax.vmap(env.step)(state, actions)
"""

from __future__ import annotations

from envs.base import Env, State
from envs.catch import Catch, CatchState
from envs.connect4 import Connect4, Connect4State
from envs.game2048 import Game2048, Game2048State
from envs.pgx_adapter import make_pgx
from envs.tictactoe import TicTacToe, TicTacToeState

_REGISTRY = {
    "tictactoe": TicTacToe,
    "connect4": Connect4,
    "catch": Catch,
    "2048": Game2048,
}
PGX_PREFIX = "pgx:"
VALID_NAMES = tuple(_REGISTRY) + (PGX_PREFIX + "<env_id>",)


def make(name: str, **kwargs) -> Env:
  """Builds an environment by name.

  Args:
    name: "tictactoe", "connect4", "catch", "2048" or "pgx:<env_id>" (e.g.
      "pgx:go_9x9", needs ``pip install pgx``).
    **kwargs: constructor arguments (e.g. ``rows=``/``columns=`` for catch).

  Raises:
    ValueError: unknown name (the message lists the valid names).
    ImportError: a "pgx:" name while pgx is not installed.
  """
  if not isinstance(name, str):
    raise ValueError(f"Environment name must be a string, got {name!r}; "
                     f"valid names: {', '.join(VALID_NAMES)}")
  if name.startswith(PGX_PREFIX):
    env_id = name[len(PGX_PREFIX):]
    if not env_id:
      raise ValueError(f"Empty pgx env id in {name!r}; use 'pgx:<env_id>', "
                       "e.g. 'pgx:go_9x9'")
    return make_pgx(env_id, **kwargs)
  if name not in _REGISTRY:
    raise ValueError(f"Unknown environment {name!r}; valid names: "
                     f"{', '.join(VALID_NAMES)}")
  return _REGISTRY[name](**kwargs)


__all__ = [
    "Catch", "CatchState", "Connect4", "Connect4State", "Env", "Game2048",
    "Game2048State", "State",
    "TicTacToe", "TicTacToeState", "VALID_NAMES", "make",
]
