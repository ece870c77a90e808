"""Tests of agents/runs/signals.py: SIGTERM and Ctrl-C become a stop
request, a second Ctrl-C aborts, after training a signal stops at once, and
the exit status is 128 + the signal's number."""
import os
import signal

import pytest

from agents.runs import signals


def test_exit_codes_and_names():
  assert signals.exit_code(signal.SIGTERM) == 143
  assert signals.exit_code(signal.SIGINT) == 130
  assert signals.signal_name(signal.SIGTERM) == "SIGTERM"
  stop = signals.RunStopped(signal.SIGTERM, 3)
  assert stop.exit_code == 143 and stop.iteration == 3
  assert not isinstance(stop, Exception)  # `except Exception` lets it pass.


def test_sigterm_is_a_request_and_the_handlers_come_back(capfd):
  before = {s: signal.getsignal(s) for s in signals.STOP_SIGNALS}
  with signals.StopSignals() as stop:
    assert stop.signum == 0
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.signum == signal.SIGTERM
    os.kill(os.getpid(), signal.SIGTERM)  # A second SIGTERM: the same.
    assert stop.signum == signal.SIGTERM
  assert {s: signal.getsignal(s) for s in signals.STOP_SIGNALS} == before
  err = capfd.readouterr().err
  assert err.count("SIGTERM received: stopping after this iteration, with "
                   "a checkpoint and without the final evaluation") == 1


def test_a_second_ctrl_c_aborts(capfd):
  with signals.StopSignals() as stop:
    os.kill(os.getpid(), signal.SIGINT)
    assert stop.signum == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
  err = capfd.readouterr().err
  assert "Ctrl-C again: abort now" in err and "aborting now" in err


def test_after_training_a_signal_stops_at_once():
  with signals.StopSignals() as stop:
    stop.at_once(7)
    with pytest.raises(signals.RunStopped) as e:
      os.kill(os.getpid(), signal.SIGTERM)
  assert (e.value.signum, e.value.iteration, e.value.training_done) == (
      signal.SIGTERM, 7, True)
  # A signal that came before at_once() stops there.
  with signals.StopSignals() as stop:
    os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(signals.RunStopped) as e:
      stop.at_once(2)
  assert e.value.exit_code == 130 and e.value.iteration == 2
