"""Ctrl-C under the Dask scheduler: the workers leave SIGINT to the driver, and the cluster closes without the
~90 lines of distributed's warnings and tracebacks that buried the runner's one-line message."""
import logging
import signal

import pytest

from diffsuite.study import executors


@pytest.fixture
def restore_logger_levels():
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in executors.DISTRIBUTED_LOGGERS]
    names = {*names, *executors.DISTRIBUTED_LOGGERS, "distributed.nanny"}
    levels = {n: logging.getLogger(n).level for n in names}
    yield
    for n, level in levels.items():
        logging.getLogger(n).setLevel(level)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_an_interrupt_closes_the_cluster_without_distributed_logs(restore_logger_levels):
    calls = []

    class Client:
        def run(self, fn):
            calls.append(fn)

        def close(self):
            logging.getLogger("distributed.nanny").warning("Worker process still alive after 4.0 seconds, killing")
            logging.getLogger("tornado.application").error("Exception in callback")

    ex = object.__new__(executors.DaskExecutor)
    ex.client, ex.cluster = Client(), None
    handler = _Records()
    for name in ("distributed", "tornado"):
        logging.getLogger(name).addHandler(handler)
    try:
        ex.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None)
    finally:
        for name in ("distributed", "tornado"):
            logging.getLogger(name).removeHandler(handler)
    assert handler.records == []
    assert calls == [executors._silence_distributed_logs]  # the workers are silenced too


def test_a_normal_exit_keeps_distributeds_logs(restore_logger_levels):
    class Client:
        def close(self):
            logging.getLogger("distributed.nanny").warning("a warning worth seeing")

    ex = object.__new__(executors.DaskExecutor)
    ex.client, ex.cluster = Client(), None
    handler = _Records()
    logging.getLogger("distributed").addHandler(handler)
    try:
        ex.__exit__(None, None, None)
    finally:
        logging.getLogger("distributed").removeHandler(handler)
    assert [r.getMessage() for r in handler.records] == ["a warning worth seeing"]


def test_local_cluster_workers_ignore_sigint():
    pytest.importorskip("distributed")
    before = signal.getsignal(signal.SIGINT)
    with executors.DaskExecutor("local", workers=1) as ex:
        assert signal.getsignal(signal.SIGINT) is before  # the driver still takes Ctrl-C
        handlers = ex.client.run(lambda: int(signal.getsignal(signal.SIGINT) == signal.SIG_IGN))
    assert list(handlers.values()) == [1]


def test_closing_our_local_cluster_hides_its_shutdown_noise_and_restores_the_levels(restore_logger_levels):
    # our LocalCluster's workers, all results stored, may outlast their nanny's 4 s when they imported torch: the
    # "still alive, killing" warning and the workers' heartbeat tracebacks are noise then; the driver's loggers are
    # quiet during the close only (a notebook that goes on using distributed keeps its logs)
    calls, seen = [], []

    class Client:
        def run(self, fn):
            calls.append(fn)

        def close(self):
            logging.getLogger("distributed.nanny").warning("Worker process still alive after 4.0 seconds, killing")

    class Cluster:
        def close(self):
            logging.getLogger("distributed.core").error("CommClosedError in heartbeat_worker")

    ex = object.__new__(executors.DaskExecutor)
    ex.client, ex.cluster = Client(), Cluster()
    handler = _Records()
    logging.getLogger("distributed").addHandler(handler)
    level_before = logging.getLogger("distributed").level
    try:
        ex.__exit__(None, None, None)
        assert handler.records == [] and ex.cluster is None
        assert calls == [executors._silence_distributed_logs]  # the workers, about to exit, are silenced too
        assert logging.getLogger("distributed").level == level_before  # restored after the close
        logging.getLogger("distributed.nanny").warning("a later warning worth seeing")
        seen = [r.getMessage() for r in handler.records]
    finally:
        logging.getLogger("distributed").removeHandler(handler)
    assert seen == ["a later warning worth seeing"]


def test_a_second_local_cluster_does_not_warn_about_port_8787():
    # two runs on one machine: distributed's HTTP server defaults to 8787 and warns "Port 8787 is already in use"
    # when another cluster holds it; ours asks for a free port instead
    import socket
    import warnings

    pytest.importorskip("distributed")
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 8787))  # (if something else holds it already, the condition is the same)
        holder.listen()
    except OSError:
        pass
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with executors.DaskExecutor("local", workers=1) as ex:
                assert list(ex.client.run(lambda: 1).values()) == [1]
    finally:
        holder.close()
    assert not [w for w in caught if "already in use" in str(w.message)]
