"""What a run says on the command line while the user waits: a line before
and after each long step (:func:`timed`, e.g. a compilation) and progress
bars (:func:`progress_bar`, on stderr)."""
from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

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
