"""One live run per run directory: an ``fcntl`` lock on ``<run>/.lock``.

Process 0 of a run takes an exclusive, non-blocking ``flock`` on the file and
holds it while the run lives; it writes its pid, host and start time into it
for the message another trainer gets. The other processes of a multi-host
run do not take it (they share the directory by design). The kernel drops a
``flock`` when its process dies, however it dies (``kill -9`` included), so a
killed run never leaves the directory locked. ``flock`` is per open file, so
it also excludes a second trainer in the same process. (On network file
systems, ``flock`` works where the system supports it: NFSv4, Lustre with
``flock`` mounted.)
"""
from __future__ import annotations

import datetime
import fcntl
import os
import socket

LOCK_FILE = ".lock"


class RunLockedError(Exception):
  """Another live run holds the directory."""


class RunLock:
  """Context manager and handle of a held lock (``release()`` frees it)."""

  def __init__(self, out_dir: str):
    self.path = os.path.join(out_dir, LOCK_FILE)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      try:
        holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
      finally:
        os.close(fd)
      raise RunLockedError(
          f"{out_dir} is in use by a live training run ({holder or 'unknown'}"
          "); wait for it to finish or stop it (SIGTERM or Ctrl-C keeps its "
          "checkpoint), or choose another directory") from None
    self._fd = fd
    info = (f"pid {os.getpid()} on {socket.gethostname()}, since "
            f"{datetime.datetime.now().isoformat(timespec='seconds')}")
    os.ftruncate(fd, 0)
    os.pwrite(fd, info.encode(), 0)

  def release(self) -> None:
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.release()
