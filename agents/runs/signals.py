"""Stopping a run on a signal: SIGTERM (what SLURM, Kubernetes and cloud
preemption send, some 30 s before SIGKILL) and SIGINT (Ctrl-C).

While :class:`StopSignals` is entered, either signal only records a request
(``signum``) and says so on stderr; the training loop reads it at the end of
each iteration, makes every process agree on it
(:func:`agents.runs.processes.agree`), saves a checkpoint and raises
:class:`RunStopped`: nothing else runs (no final evaluation). A second
SIGINT aborts at once (``KeyboardInterrupt``; the last checkpoint on disk is
kept). After :meth:`StopSignals.at_once` (training is over: the final
evaluation), a signal raises :class:`RunStopped` immediately.

A command line stopped this way exits with :func:`exit_code`: 128 + the
signal's number (143 for SIGTERM, 130 for SIGINT), what a shell reports for
a process the signal ended.
"""
from __future__ import annotations

import os
import signal
from typing import Optional

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def signal_name(signum: int) -> str:
  """``"SIGTERM"``, ``"SIGINT"``...; ``"signal N"`` for an unnamed one."""
  try:
    return signal.Signals(signum).name
  except ValueError:
    return f"signal {signum}"


def exit_code(signum: int) -> int:
  """The exit status of a command stopped by ``signum``: 128 + its number."""
  return 128 + int(signum)


class RunStopped(BaseException):
  """A run stopped on a signal. ``iteration``: the iteration of its last
  checkpoint; ``training_done``: whether it stopped after training (in the
  final evaluation) rather than in it.

  Like ``KeyboardInterrupt`` it is not an ``Exception``: code that catches
  ``Exception`` does not swallow it on its way to the command line.
  """

  def __init__(self, signum: int, iteration: Optional[int] = None,
               training_done: bool = False):
    super().__init__(signum, iteration, training_done)
    self.signum = int(signum)
    self.iteration = iteration
    self.training_done = training_done

  @property
  def exit_code(self) -> int:
    return exit_code(self.signum)

  def __str__(self) -> str:
    return f"stopped by {signal_name(self.signum)}"


def _say(text: str) -> None:
  """Writes ``text`` to stderr unbuffered (safe from a signal handler, even
  while the main thread is writing to sys.stderr)."""
  try:
    os.write(2, text.encode())
  except OSError:
    pass


class StopSignals:
  """While entered, SIGTERM and SIGINT set ``signum`` (the first one's
  number; 0: none) instead of ending the process; see the module doc.

  Entered outside the main thread (where Python cannot handle signals) it
  changes nothing and ``signum`` stays 0.
  """

  def __init__(self):
    self.signum = 0
    self._iteration: Optional[int] = None  # Set by at_once().
    self._previous = {}

  def __enter__(self) -> "StopSignals":
    try:
      for s in STOP_SIGNALS:
        self._previous[s] = signal.signal(s, self._handle)
    except ValueError:  # Not in the main thread.
      self._restore()
    return self

  def __exit__(self, *exc) -> None:
    self._restore()

  def _restore(self) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    self._previous = {}

  def at_once(self, iteration: int) -> None:
    """From now on a signal raises :class:`RunStopped` (``training_done``,
    ``iteration``) at once; raises it now if one came already."""
    self._iteration = iteration
    if self.signum:
      raise RunStopped(self.signum, iteration, training_done=True)

  def _handle(self, signum, frame) -> None:
    del frame
    if self._iteration is not None:
      raise RunStopped(signum, self._iteration, training_done=True)
    if self.signum:
      if signum == signal.SIGINT:
        _say("\nCtrl-C again: aborting now (the last checkpoint is "
             "kept)\n")
        raise KeyboardInterrupt
      return
    self.signum = signum
    again = (" (Ctrl-C again: abort now, keeping the last checkpoint)"
             if signum == signal.SIGINT else "")
    _say(f"\n{signal_name(signum)} received: stopping after this "
         "iteration, with a checkpoint and without the final evaluation"
         f"{again}\n")
