"""Stop requests: one process acts on its own signal at once; the processes of one run act on
the request they agreed on, only at ``sync()`` (so all of them stop at the same step)."""

import os
import signal

from effnet_tf.training.interrupts import StopRequests


def test_one_process_stops_at_its_signal():
    with StopRequests() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.name() == "SIGTERM"
        stop.sync()
        assert stop.requested


def test_processes_stop_at_the_signal_they_agree_on():
    told = []

    def agree(signum):  # another process of the run received SIGTERM
        told.append(signum)
        return max(signum, signal.SIGTERM)

    with StopRequests(agree) as stop:
        assert not stop.requested
        stop.sync()  # this process received nothing and is told of the other's SIGTERM
        assert stop.requested and stop.name() == "SIGTERM"
    assert told == [0]


def test_a_signal_counts_from_the_next_sync():
    before = signal.getsignal(signal.SIGINT)
    with StopRequests(lambda signum: signum) as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert not stop.requested  # between two syncs the processes' views do not change
        stop.sync()
        assert stop.requested and stop.name() == "SIGINT"
    assert signal.getsignal(signal.SIGINT) is before
