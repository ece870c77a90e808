"""Training configuration and per-game defaults."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Optional, Tuple

ALGOS = ("muzero", "alphazero", "stochastic_muzero")
POLICIES = ("gumbel", "muzero")
TORSOS = ("mlp", "conv")


@dataclasses.dataclass(frozen=True)
class Config:
  """Everything that defines a training run (saved in ``run.json``).

  One *iteration* (one call of the jitted training step) = ``selfplay_steps``
  lockstep steps of ``num_envs`` environments with search, written to the
  replay buffer, then ``updates_per_iter`` gradient steps on batches of
  ``batch_size`` windows sampled from the buffer.
  """
  env: str = "tictactoe"
  algo: str = "muzero"            # "muzero" (learned model) | "alphazero"
                                  # | "stochastic_muzero" (learned model
                                  # with chance outcomes:
                                  # agents/algorithms/stochastic_muzero.py).
  policy: str = "gumbel"          # "gumbel" | "muzero" (pUCT); Stochastic
                                  # MuZero's default is "muzero" (pUCT);
                                  # "gumbel" puts Gumbel MuZero's rules on
                                  # its chance tree.
  num_simulations: int = 16
  max_num_considered_actions: int = 16
  seed: int = 0
  steps: int = 400                # Training iterations.
  # Self-play and replay.
  num_envs: int = 128
  selfplay_steps: int = 16
  replay_capacity: int = 64       # Time steps kept per environment.
  # Exploration in self-play: for the first `sample_plies` moves of an
  # episode the action is sampled from the search's action_weights; then,
  # with probability `random_move_prob`, a uniformly random legal move is
  # played instead (value targets then bootstrap from the search value at
  # that step rather than follow the random move: see
  # agents/training/targets.py).
  # The first `random_opening_plies` moves of every episode are uniformly
  # random legal moves (also marked as exploration), so that self-play sees
  # every opening, not just the ones its own policy prefers.
  sample_plies: int = 0
  random_move_prob: float = 0.0
  random_opening_plies: int = 0
  # Self-play's temperature T (pUCT: the action is drawn from the root's
  # visit counts raised to 1 / T; Gumbel: T scales the root's Gumbel noise;
  # 0: the search's choice without noise): one value for the whole run, or
  # n values for n equal stretches of its `steps` iterations. MuZero's
  # schedule (Schrittwieser et al. 2020, appendix) is (1, 1, 0.5, 0.25): 1
  # for the first half, 0.5 for the next quarter, 0.25 for the last.
  temperature: Tuple[float, ...] = (1.0,)
  # Learning.
  unroll_steps: int = 5           # K (MuZero); AlphaZero uses 0.
  td_steps: Optional[int] = None  # n; None = the game's max episode length.
  discount: float = 1.0           # Single-player games (two-player: -1).
  batch_size: int = 256
  updates_per_iter: int = 8
  learning_rate: float = 2e-3
  lr_decay: bool = True           # Cosine decay to 10% over `steps`.
  weight_decay: float = 1e-4
  max_grad_norm: float = 1.0
  value_loss_weight: float = 0.5
  # The value target mixes the n-step return z with the search's root value
  # q at the same step: (1 - a) z + a q (agents/training/targets.py); 0 =
  # the return alone, as in AlphaZero and MuZero.
  root_value_mix: float = 0.0
  # MuZero Reanalyse: this fraction of every batch gets fresh policy and
  # value targets from new searches with the current parameters (see
  # agents/training/batch.py and docs/agents.md); 0 = off. Only algo="muzero".
  reanalyse_fraction: float = 0.0
  # Each replayed window is reflected by the game's left-right symmetry
  # with probability 1/2 (agents/training/augment.py; connect4, tictactoe).
  mirror: bool = False
  # EfficientZero's temporal consistency (Ye et al. 2021): the weight of
  # the loss that pulls the k-step unrolled latent towards the projected
  # representation of o_{t+k} (agents/algorithms/muzero.py); 0 = off.
  # Only algo="muzero".
  consistency_weight: float = 0.0
  # The weight of MuZero's reward loss on the transitions that end an
  # episode (agents/algorithms/muzero.py): a board game rewards only its
  # last move, a few percent of the unrolled transitions; 1 = unweighted.
  # Only algo="muzero".
  terminal_reward_weight: float = 1.0
  # The weight of MuZero's observation reconstruction (Scholz et al. 2021):
  # a decoder reads every latent s^0..s^K back into o_t..o_{t+K}
  # (agents/algorithms/muzero.py); 0 = off. Only algo="muzero".
  reconstruction_weight: float = 0.0
  # The weight of MuZero's episode-end head (as DreamerV2's discount
  # predictor), whose prediction also scales the search's discount
  # (agents/algorithms/muzero.py); 0 = off. Only algo="muzero".
  end_weight: float = 0.0
  # Data parallelism: the environments, replay and batch are cut into this
  # many equal shards, each with its own random stream; a run on D devices
  # needs D to divide it, and gives the same results on any such D.
  num_shards: int = 1
  # Network. The torso: "mlp", residual MLPs on the flattened observation,
  # a latent of `latent_size`; or "conv", MuZero's board-game networks,
  # residual 3x3 convolutions of `channels` channels over an image
  # observation, a latent of the board's shape (agents/algorithms/muzero.py;
  # muzero and alphazero). `width`: the MLPs' width, and the conv heads'
  # hidden layer.
  torso: str = "mlp"
  channels: int = 32
  width: int = 128
  latent_size: int = 64
  repr_blocks: int = 2
  dyn_blocks: int = 2
  pred_blocks: int = 1
  value_bins: int = 21
  value_min: float = -1.0
  value_max: float = 1.0
  # Stochastic MuZero: the number of chance codes C, the weight of the
  # chance encoder's commitment loss, and of its code-usage term (the
  # entropy deficit of the batch's mean code,
  # agents/algorithms/stochastic_muzero.py).
  num_chance_codes: int = 32
  commitment_weight: float = 1.0
  code_usage_weight: float = 0.0
  # Evaluation.
  eval_every: int = 50            # Iterations between quick evaluations.
  eval_games: int = 64            # Per side, for the quick evaluations.
  final_eval_games: int = 200     # Per side, at the end of training.

  def to_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: Dict[str, Any]) -> "Config":
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
      raise ValueError(f"Unknown config fields {sorted(unknown)}")
    d = dict(d)
    if isinstance(d.get("temperature"), list):   # JSON's, or the flag's.
      d["temperature"] = tuple(d["temperature"])
    return cls(**d)


# Per-game defaults (anything not listed takes Config's default).
GAME_DEFAULTS: Dict[str, Dict[str, Any]] = {
    # Tic-tac-toe: the first move of every self-play game is uniformly
    # random. Without it, self-play X opened in the centre 81% of the time
    # (other cells ~2.4% each, from random_move_prob alone), while the
    # perfect player, choosing uniformly among optimal moves, opens on all 9
    # cells alike. The agent as O then misplayed the rarely seen edge
    # openings: all its losses (7.5% of games, 6.9% exactly) were X edge,
    # O centre, X far corner (e.g. X 3, O 4, X 2), O a quiet edge (5), X
    # forks (0). With the random opening ply, the loss probability against
    # the perfect player, computed over its whole game tree, is exactly 0 as
    # first and as second player for seeds 0, 1, 2 and 3 (600 iterations,
    # ~200 s on one CPU core, as before).
    "tictactoe": dict(num_simulations=16, num_envs=128, selfplay_steps=16,
                      replay_capacity=256, batch_size=256, updates_per_iter=8,
                      width=128, latent_size=64, steps=600,
                      sample_plies=9, random_move_prob=0.2,
                      random_opening_plies=1),
    # MuZero needs enough updates per iteration here: with 4 updates and 8
    # simulations its self-play did not improve; with 16 and 16 it catches
    # every ball after ~250 iterations (about a minute on 2 CPU cores).
    "catch": dict(num_simulations=16, num_envs=64, selfplay_steps=16,
                  replay_capacity=64, batch_size=128, updates_per_iter=16,
                  width=64, latent_size=32, discount=0.99, steps=300,
                  max_num_considered_actions=3),
    # Connect Four: self-play is ~90% of an iteration, so each position is
    # learned from 4 times (32 updates of 256 per 2048 new positions, from
    # the last 768 steps of every game). Against OpenSpiel's MCTSBot(1000),
    # 256 simulations per move, after 1800 iterations on one core (42
    # min): 66.5% / 79.5% wins as first / second player, against 24.5% /
    # 40.5% with 8 updates from 96 steps; with mirror augmentation (each
    # window reflected with probability 1/2) 80.5% / 77.5% in 60 CPU
    # minutes, move accuracy 0.931 on 1000 solved positions
    # (docs/measurements/agents.md).
    "connect4": dict(algo="alphazero", num_simulations=32, num_envs=128,
                     selfplay_steps=16, replay_capacity=768, batch_size=256,
                     updates_per_iter=32, width=256, latent_size=128,
                     repr_blocks=3, steps=1800, eval_every=100,
                     sample_plies=8, random_move_prob=0.03, mirror=True),
    # 2048: single player, long games with large returns. Stochastic MuZero
    # (learned afterstates and chance codes; the code-usage term keeps the
    # chance encoder from collapsing to one code); td_steps = 10 as in the
    # paper, a shorter discount horizon than its 0.999 for short runs;
    # values and rewards on a [0, 8000] categorical support (transformed).
    # 2800 iterations: 27-29 minutes on one core of the 2-core machine.
    "2048": dict(algo="stochastic_muzero", policy="muzero",
                 num_simulations=16, num_envs=32, selfplay_steps=16,
                 replay_capacity=256, batch_size=128, updates_per_iter=16,
                 width=128, latent_size=64, unroll_steps=5, td_steps=10,
                 discount=0.99, value_min=0.0, value_max=8000.0,
                 value_bins=61, steps=2800, eval_every=100, eval_games=32,
                 final_eval_games=100, code_usage_weight=0.5),
    "pgx": dict(num_simulations=32, num_envs=64, selfplay_steps=16,
                replay_capacity=64, td_steps=10, width=256, latent_size=128,
                steps=1000),
}


def defaults_for(env_name: str) -> Dict[str, Any]:
  key = "pgx" if env_name.startswith("pgx:") else env_name
  return dict(GAME_DEFAULTS.get(key, {}))


def make_config(env_name: str, **overrides) -> Config:
  """Config for ``env_name``: game defaults, then ``overrides`` (None = keep
  the default)."""
  values = defaults_for(env_name)
  values.update({k: v for k, v in overrides.items() if v is not None})
  if isinstance(values.get("temperature"), (int, float)):  # One number.
    values["temperature"] = (values["temperature"],)
  values["env"] = env_name
  if (values.get("algo") == "stochastic_muzero"
      and overrides.get("policy") is None):
    values["policy"] = "muzero"  # pUCT, as in the paper.
  if (values.get("algo", Config.algo) != "stochastic_muzero"
      and overrides.get("code_usage_weight") is None):
    values["code_usage_weight"] = 0.0  # A chance-encoder term only.
  return validate(Config.from_dict(values))


def unroll_steps(config: Config) -> int:
  """K, the dynamics steps the loss unrolls: ``config.unroll_steps``, 0
  for AlphaZero (no learned model)."""
  return 0 if config.algo == "alphazero" else config.unroll_steps


def shard_rows(config: Config) -> int:
  """The rows of one shard's batch, ``batch_size / num_shards``: a loss's
  batch statistics and masked means are taken per shard, so that a run
  gives the same result on any number of devices."""
  return config.batch_size // config.num_shards


def reanalyse_rows(config: Config) -> int:
  """Reanalysed rows per shard's batch: ``reanalyse_fraction * batch_size /
  num_shards`` rounded to the nearest integer (halves up); static."""
  return int(math.floor(config.reanalyse_fraction * config.batch_size
                        / config.num_shards + 0.5))


def validate(config: Config) -> Config:
  """Raises ValueError with a clear message for bad values."""
  def positive(name):
    v = getattr(config, name)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise ValueError(f"{name} must be a positive integer, got {v!r}")
  def fraction(name, flag=None):
    v = getattr(config, name)
    if (isinstance(v, bool) or not isinstance(v, (int, float))
        or not 0.0 <= v <= 1.0):
      named = f"{name} ({flag})" if flag else name
      raise ValueError(f"{named} must be in [0, 1], got {v!r}")
  for name in ("num_simulations", "num_envs", "selfplay_steps",
               "replay_capacity", "batch_size", "updates_per_iter", "width",
               "latent_size", "max_num_considered_actions", "steps",
               "eval_every", "eval_games", "final_eval_games",
               "num_shards", "num_chance_codes", "channels"):
    positive(name)
  for name, flag in (("num_envs", "--envs"), ("batch_size", "--batch-size")):
    if getattr(config, name) % config.num_shards:
      raise ValueError(
          f"{flag} {getattr(config, name)} must be divisible by the number "
          f"of shards ({config.num_shards}, by default the number of "
          "devices): it is a global size, split evenly over them")
  if config.algo not in ALGOS:
    raise ValueError(f"algo must be one of {ALGOS}, got {config.algo!r}")
  if config.policy not in POLICIES:
    raise ValueError(f"policy must be one of {POLICIES}, got {config.policy!r}")
  if config.torso not in TORSOS:
    raise ValueError(f"torso (--torso) must be one of {TORSOS}, got "
                     f"{config.torso!r}")
  if config.torso != "mlp" and config.algo == "stochastic_muzero":
    raise ValueError("torso (--torso) 'conv' needs algo 'muzero' or "
                     "'alphazero', got algo 'stochastic_muzero'")
  if not config.code_usage_weight >= 0:
    raise ValueError("code_usage_weight (--code-usage-weight) must be >= 0, "
                     f"got {config.code_usage_weight!r}")
  if config.code_usage_weight and config.algo != "stochastic_muzero":
    raise ValueError("code_usage_weight (--code-usage-weight) needs algo "
                     f"'stochastic_muzero' (a chance-encoder term), got algo "
                     f"{config.algo!r}")
  def muzero_weight(name, flag, off, what):
    # A weight of a term of MuZero's model loss: off at ``off`` (0 or 1),
    # > 0 where off is 1 and >= 0 where it is 0; other algorithms only off.
    v = getattr(config, name)
    if not (v > 0 if off else v >= 0):
      raise ValueError(f"{name} ({flag}) must be {'>' if off else '>='} 0, "
                       f"got {v!r}")
    if v != off and config.algo != "muzero":
      raise ValueError(f"{name} ({flag}) needs algo 'muzero' ({what}), got "
                       f"algo {config.algo!r}")
  muzero_weight("consistency_weight", "--consistency-weight", 0,
                "a term of its learned model's loss")
  if config.consistency_weight > 0 and config.unroll_steps < 1:
    raise ValueError("consistency_weight (--consistency-weight) needs "
                     "unroll_steps >= 1 (it compares unrolled latents with "
                     f"later observations), got {config.unroll_steps}")
  muzero_weight("terminal_reward_weight", "--terminal-reward-weight", 1,
                "a weight of its learned model's reward loss")
  muzero_weight("reconstruction_weight", "--reconstruction-weight", 0,
                "a term of its learned model's loss")
  muzero_weight("end_weight", "--end-weight", 0,
                "a head of its learned model")
  check_temperature(config)
  fraction("root_value_mix", "--root-value-mix")
  if config.unroll_steps < 0:
    raise ValueError(f"unroll_steps must be >= 0, got {config.unroll_steps}")
  if config.sample_plies < 0:
    raise ValueError(f"sample_plies must be >= 0, got {config.sample_plies}")
  if config.random_opening_plies < 0:
    raise ValueError("random_opening_plies must be >= 0, got "
                     f"{config.random_opening_plies}")
  fraction("random_move_prob")
  fraction("reanalyse_fraction", "--reanalyse")
  if config.reanalyse_fraction > 0:
    if config.algo != "muzero":
      raise ValueError(
          f"reanalyse_fraction (--reanalyse) {config.reanalyse_fraction} "
          f"needs algo='muzero', got {config.algo!r}: AlphaZero's search "
          "needs true environment states, which replay does not keep, and "
          "Stochastic MuZero reanalyse is not implemented")
    if reanalyse_rows(config) == 0:
      raise ValueError(
          f"reanalyse_fraction (--reanalyse) {config.reanalyse_fraction} of "
          f"batch_size {config.batch_size} over {config.num_shards} "
          "shard(s) rounds to 0 reanalysed rows per shard: raise it or set "
          "it to 0")
  if not isinstance(config.mirror, bool):
    raise ValueError(f"mirror (--mirror) must be a bool, got "
                     f"{config.mirror!r}")
  if config.td_steps is not None and config.td_steps < 1:
    raise ValueError(f"td_steps must be >= 1, got {config.td_steps}")
  if config.value_bins < 2 or not config.value_max > config.value_min:
    raise ValueError("need value_bins >= 2 and value_max > value_min")
  return config


def check_temperature(config: Config) -> None:
  """Raises ValueError unless ``temperature`` is a non-empty tuple of
  numbers >= 0."""
  temps = config.temperature
  if (not isinstance(temps, tuple) or not temps
      or not all(isinstance(t, (int, float)) and not isinstance(t, bool)
                 and t >= 0 for t in temps)):
    raise ValueError("temperature (--temperature) must be one or more "
                     f"numbers >= 0, got {temps!r}")
