"""How large a search fits in memory: `mcts.tree_nbytes` per configuration.

  python -m benchmarks.memory

For typical embeddings (MuZero's Atari hidden state 6x6x256, a 19x19x256
Go hidden state, a 256-wide MLP state for small board games) it prints the
bytes of one root's tree and the largest batch whose trees fit in 16 GB and
80 GB, with float32 and bfloat16 embedding storage, next to mctx's layout
(six [B, N, A] arrays; measured with jax.eval_shape when mctx is installed).
"""
import argparse

import jax
import jax.numpy as jnp

import mcts

CONFIGS = [  # name, embedding shape, actions
    ("Atari (6x6x256)", (6, 6, 256), 18),
    ("Go 19x19 (19x19x256)", (19, 19, 256), 362),
    ("board game MLP (256)", (256,), 362),
]
SIMULATIONS = (50, 800)
GIB = 1 << 30


def mctx_tree_nbytes(batch, sims, actions, shape):
  """Bytes of mctx's tree for the same search, or None without mctx."""
  try:
    import mctx  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  root = mctx.RootFnOutput(
      prior_logits=jax.ShapeDtypeStruct((batch, actions), jnp.float32),
      value=jax.ShapeDtypeStruct((batch,), jnp.float32),
      embedding=jax.ShapeDtypeStruct((batch,) + shape, jnp.float32))

  def recurrent_fn(params, key, action, embedding):
    del params, key, action
    return mctx.RecurrentFnOutput(
        reward=jnp.zeros(batch), discount=jnp.ones(batch),
        prior_logits=jnp.zeros((batch, actions)),
        value=jnp.zeros(batch)), embedding

  out = jax.eval_shape(lambda root: mctx.muzero_policy(
      (), jax.random.PRNGKey(0), root, recurrent_fn, sims), root)
  return sum(x.size * x.dtype.itemsize
             for x in jax.tree.leaves(out.search_tree))


def rows():
  for name, shape, actions in CONFIGS:
    embedding = jax.ShapeDtypeStruct(shape, jnp.float32)
    for sims in SIMULATIONS:
      per_root = {dtype: mcts.tree_nbytes(1, sims, actions, embedding,
                                          embedding_dtype=dtype)
                  for dtype in (None, jnp.bfloat16)}
      theirs = mctx_tree_nbytes(1, sims, actions, shape)
      yield dict(
          config=name, actions=actions, simulations=sims,
          mb_per_root_f32=per_root[None] / 2**20,
          mb_per_root_bf16=per_root[jnp.bfloat16] / 2**20,
          mctx_mb_per_root=None if theirs is None else theirs / 2**20,
          max_batch_16gb_f32=int(16 * GIB // per_root[None]),
          max_batch_16gb_bf16=int(16 * GIB // per_root[jnp.bfloat16]),
          max_batch_80gb_f32=int(80 * GIB // per_root[None]),
          max_batch_80gb_bf16=int(80 * GIB // per_root[jnp.bfloat16]))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.parse_args()
  header = ("| embedding | A | sims | MB/root f32 | MB/root bf16 | mctx MB/root "
            "| max B in 16 GB (f32 / bf16) | max B in 80 GB (f32 / bf16) |")
  print(header)
  print("|---|---:|---:|---:|---:|---:|---:|---:|")
  for r in rows():
    mctx_mb = "-" if r["mctx_mb_per_root"] is None else (
        f"{r['mctx_mb_per_root']:.2f}")
    print(f"| {r['config']} | {r['actions']} | {r['simulations']} | "
          f"{r['mb_per_root_f32']:.2f} | {r['mb_per_root_bf16']:.2f} | "
          f"{mctx_mb} | {r['max_batch_16gb_f32']:,} / "
          f"{r['max_batch_16gb_bf16']:,} | {r['max_batch_80gb_f32']:,} / "
          f"{r['max_batch_80gb_bf16']:,} |")


if __name__ == "__main__":
  main()
