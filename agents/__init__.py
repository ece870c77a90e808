"""MuZero / AlphaZero agents trained with batched MCTS.

``agents.load(run_dir)`` returns a trained agent as a
:class:`agents.player.Player` (imported on first use, so that
``import agents.config`` stays light).
"""


def __getattr__(name):
  if name in ("load", "Player", "LoadError"):
    from agents import player  # pylint: disable=g-import-not-at-top
    return getattr(player, name)
  raise AttributeError(f"module 'agents' has no attribute {name!r}")
