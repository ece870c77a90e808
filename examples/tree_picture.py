"""Draws a searched tree with Graphviz: python -m examples.tree_picture.

Searches a tic-tac-toe position (O to move can win at once, and must,
since X threatens too) with the true rules as the model and writes
`tree.dot` and, where the `dot` program is installed, `tree.png`.
"""
import argparse
import shutil

import jax
import jax.numpy as jnp

import envs
import mcts
from benchmarks.tree_reuse import make_recurrent_fn


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--simulations", type=int, default=16)
  parser.add_argument("--out", default="tree")
  args = parser.parse_args()
  env = envs.make("tictactoe")
  state = jax.vmap(env.init)(jax.random.split(jax.random.PRNGKey(0), 1))
  # X: b2 c3 a3, O: a1 c1; O to move wins at b1 (X threatens b3).
  for action in (4, 0, 8, 2, 6):
    state = jax.vmap(env.step)(state, jnp.array([action]))
  root = mcts.RootFnOutput(prior_logits=jnp.zeros((1, 9)), value=jnp.zeros(1),
                           embedding=state)
  out = mcts.muzero_policy((), jax.random.PRNGKey(1), root,
                           make_recurrent_fn(env), args.simulations,
                           invalid_actions=~state.legal_action_mask,
                           dirichlet_fraction=0.0)
  cells = [f"{'abc'[a % 3]}{a // 3 + 1}" for a in range(9)]
  source = mcts.to_dot(out.search_tree, 0, action_labels=cells)
  with open(args.out + ".dot", "w") as f:
    f.write(source)
  print(f"wrote {args.out}.dot")
  if shutil.which("dot"):
    print("wrote", mcts.render_dot(source, args.out + ".png"))


if __name__ == "__main__":
  main()
