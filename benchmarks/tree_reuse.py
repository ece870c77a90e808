"""How much tree reuse raises playing strength at equal simulations per move.

Two AlphaZero-style players search tic-tac-toe with the true rules as their
model (uniform priors, value 0 at leaves: the search alone decides) and the
same number of new simulations per move. One keeps its subtree between moves
(`mcts.get_subtree` after its own move and after the opponent's); the other
starts every search afresh. They play each other, each first in half of the
games; Gumbel noise makes the games differ.

  python -m benchmarks.tree_reuse [--games 512] [--simulations 4,8,16]
  python -m benchmarks.tree_reuse --double  # for scale: 2x simulations
"""
import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

import envs
import mcts


def make_recurrent_fn(env):
  """The true rules as a model; values are from the mover's view."""
  def recurrent_fn(params, rng_key, action, state):
    del params, rng_key
    new = jax.vmap(env.step)(state, action)
    batch = action.shape[0]
    return mcts.RecurrentFnOutput(
        reward=new.reward,
        discount=jnp.where(new.terminated, 0.0, -1.0),
        prior_logits=jnp.zeros((batch, env.num_actions)),
        value=jnp.zeros(batch),
        invalid_actions=~new.legal_action_mask), new
  return recurrent_fn


POLICIES = {
    "gumbel": functools.partial(mcts.gumbel_muzero_policy),
    # Acting greedily on visits; the Dirichlet noise makes games differ.
    "muzero": functools.partial(mcts.muzero_policy, temperature=0.0),
}


def play(env, num_games, simulations, key, policy="gumbel", reuse=True):
  """Returns the first player's results: +1 win, 0 draw, -1 loss `[G]`.

  The first player keeps its tree (`reuse`), or, for comparison, searches
  afresh with twice the simulations.
  """
  recurrent_fn = make_recurrent_fn(env)
  capacity = simulations * env.max_episode_steps + 1
  def search(key, root, num_simulations=simulations, **kwargs):
    return POLICIES[policy]((), key, root, recurrent_fn=recurrent_fn,
                            num_simulations=num_simulations, **kwargs)

  def root_of(state):
    return mcts.RootFnOutput(
        prior_logits=jnp.zeros((num_games, env.num_actions)),
        value=jnp.zeros(num_games), embedding=state)

  def move(carry, key):
    state, kept, reuse_player = carry
    invalid = ~state.legal_action_mask
    # The reuse player continues its kept tree; the other starts afresh.
    if reuse:
      reuse_out = search(key, root_of(state), invalid_actions=invalid,
                         tree=kept)
    else:
      reuse_out = search(key, root_of(state), invalid_actions=invalid,
                         num_simulations=2 * simulations, capacity=capacity)
    fresh_out = search(key, root_of(state), invalid_actions=invalid,
                       capacity=capacity)
    reuse_turn = state.current_player == reuse_player
    action = jnp.where(reuse_turn, reuse_out.action, fresh_out.action)
    # Whoever moved, the reuse player's tree follows the played action:
    # from its new search on its turn, from its kept tree otherwise.
    tree = jax.tree.map(
        lambda a, b: jnp.where(
            reuse_turn.reshape((-1,) + (1,) * (a.ndim - 1)), a, b),
        reuse_out.search_tree.replace(extra_data=None), kept)
    kept = mcts.get_subtree(tree, action)
    done = state.terminated
    state = jax.vmap(env.step)(state, action)
    outcome = jnp.where(done, 0.0, state.rewards[jnp.arange(num_games),
                                                 reuse_player])
    return (state, kept, reuse_player), outcome

  @jax.jit
  def run(key):
    init_key, key = jax.random.split(key)
    state = jax.vmap(env.init)(jax.random.split(init_key, num_games))
    reuse_player = jnp.arange(num_games) % 2
    empty = search(key, root_of(state), capacity=capacity,
                   invalid_actions=~state.legal_action_mask).search_tree
    empty = jax.tree.map(jnp.zeros_like, empty.replace(extra_data=None))
    empty = empty.replace(
        parents=jnp.full_like(empty.parents, -1),
        action_from_parent=jnp.full_like(empty.action_from_parent, -1),
        children_index=jnp.full_like(empty.children_index, -1))
    _, outcomes = jax.lax.scan(
        move, (state, empty, reuse_player),
        jax.random.split(key, env.max_episode_steps))
    return outcomes.sum(0)

  return np.asarray(run(key))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--games", type=int, default=512)
  parser.add_argument("--simulations", default="4,8,16")
  parser.add_argument("--policy", default="gumbel,muzero")
  parser.add_argument("--double", action="store_true",
                      help="compare with twice the simulations instead of "
                      "with reuse")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  env = envs.make("tictactoe")
  who = "2x-simulations player" if args.double else "reuse player"
  print(f"| policy | simulations/move | games | {who} wins | draws | "
        f"{who} losses | score | seconds |")
  print("|---|---:|---:|---:|---:|---:|---:|---:|")
  for policy in args.policy.split(","):
    for sims in [int(s) for s in args.simulations.split(",")]:
      start = time.time()
      outcomes = play(env, args.games, sims, jax.random.PRNGKey(args.seed),
                      policy, reuse=not args.double)
      wins, draws, losses = [(outcomes == v).mean() for v in (1, 0, -1)]
      score = wins + 0.5 * draws
      print(f"| {policy} | {sims} | {args.games} | {wins:.1%} | "
            f"{draws:.1%} | {losses:.1%} | {score:.3f} | "
            f"{time.time() - start:.1f} |")


if __name__ == "__main__":
  main()
