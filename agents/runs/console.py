"""What a run says on the command line while the user waits: a line before
and after each long step (:func:`timed`, e.g. a compilation) and progress
bars (:func:`progress_bar`, :func:`ply_progress`, on stderr)."""
from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator, Optional

from tqdm import tqdm


@contextlib.contextmanager
def timed(log: Callable[[str], None], doing: str, done: str
          ) -> Iterator[None]:
  """Logs ``"<doing>..."`` before the block and ``"<done> in 12.3 s"``
  after it, e.g. ``timed(log, "Compiling the training iteration (...)",
  "Compiled the training iteration")``."""
  log(f"{doing}...")
  start = time.time()
  yield
  log(f"{done} in {time.time() - start:.1f} s")


def progress_bar(total: int, desc: str, unit: str, initial: int = 0
                 ) -> tqdm:
  """A progress bar on stderr of ``total`` steps of ``unit``, from
  ``initial``."""
  return tqdm(total=total, initial=initial, desc=desc, unit=unit,
              dynamic_ncols=True)


@contextlib.contextmanager
def ply_progress(total: int, desc: str, enabled: bool = True
                 ) -> Iterator[Optional[Callable[[int, int], None]]]:
  """An ``on_ply(plies played, games running)`` callback (for the lock-step
  matches of :mod:`agents.evaluation.matches`) that moves a bar of
  ``total`` plies; None if not ``enabled``."""
  if not enabled:
    yield None
    return
  bar = progress_bar(total, desc, "ply")

  def on_ply(plies: int, running: int) -> None:
    bar.set_postfix(games_running=running, refresh=False)
    bar.update(plies - bar.n)

  try:
    yield on_ply
  finally:
    bar.close()
