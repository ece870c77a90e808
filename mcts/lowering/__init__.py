"""How a search step is made fast on one platform, giving the same trees
as `mcts.search` describes.

`search` asks this package for a walk (`walks.walk`: parent, action, path
and depth of every tree's leaf edge) and for a backup (`backup.backward`),
with no callback into the search. It passes the selection rules it was
given; the library's own rules describe themselves (`mcts.rules`).
Inside:
  platforms.py     the platform switch (`by_platform`, `forced_platform`)
                   and the tree levels one loop iteration takes
  walks.py         which walk a search takes (`walk_kernel` mode switch)
  generic_walk.py  the walk for any rules, lowered per platform
  pallas_walk.py   the walk of the library's rules as one Pallas kernel
  kernel_rules.py  those rules on one node's rows, inside the kernel
  backup.py        the backup per platform, with one set of derivatives
  cpu_backup.py    the CPU's level-by-level backup
  cpu_splits.py    the CPU's work-arounds for XLA's splits over threads
"""
