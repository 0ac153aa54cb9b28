"""Ports for the servers the tests and the launchers start (never from the ephemeral range),
and what polling such a port may meet before its server is up."""

from __future__ import annotations

import socket
import threading

import pytest
from musicrec.runtime import cluster


def test_free_ports_are_below_the_ephemeral_range_distinct_and_bindable():
    low = int(cluster.EPHEMERAL_RANGE.read_text().split()[0])
    # What a driver's py4j gateway or a block manager gets: bind(0), from the ephemeral range.
    taken = []
    for _ in range(20):
        s = socket.socket()
        s.bind((cluster.HOST, 0))
        taken.append(s)
    try:
        ports = [cluster.free_port() for _ in range(50)]
        assert len(set(ports)) == 50
        assert all(1024 <= p < low for p in ports), (low, ports)
        assert not set(ports) & {s.getsockname()[1] for s in taken}
        with socket.socket() as server:
            server.bind((cluster.HOST, ports[0]))  # still free for the server that asked
            server.listen()
            assert not cluster.port_free(ports[0])
    finally:
        for s in taken:
            s.close()


def test_an_ephemeral_range_starting_low_leaves_the_choice_to_the_kernel(tmp_path, monkeypatch):
    ranges = tmp_path / "ip_local_port_range"
    ranges.write_text("1500\t60999\n")
    monkeypatch.setattr(cluster, "EPHEMERAL_RANGE", ranges)
    port = cluster.free_port()
    assert 1500 <= port <= 60999
    assert cluster.port_free(port)


class Answering:
    """A TCP server on a free port that answers every connection with ``reply`` and closes:
    what a poller meets when another server (a py4j gateway) or a half-started UI holds the
    port it polls."""

    def __init__(self, reply: bytes):
        self.server = socket.socket()
        self.server.bind((cluster.HOST, cluster.free_port()))
        self.server.listen()
        self.port = self.server.getsockname()[1]
        self.reply = reply
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # closed
            with conn:
                conn.recv(65536)
                conn.sendall(self.reply)

    def close(self) -> None:
        self.server.close()


@pytest.mark.parametrize(
    "reply",
    [
        b"!yv\n",  # not HTTP at all (a py4j gateway's answer): http.client.BadStatusLine
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{",  # cut short: IncompleteRead
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nstarting.",  # not JSON yet
    ],
)
def test_a_port_answering_something_else_is_a_master_not_up_yet(tmp_path, reply):
    other = Answering(reply)
    try:
        master = cluster.StandaloneCluster(tmp_path, master_ui_port=other.port)
        assert master.status() is None
        with pytest.raises(TimeoutError, match="the master"):
            master.wait_for(lambda status: status is not None, 1.5, "the master")
        if reply.startswith(b"HTTP/"):  # an HTTP status line: the UI is up, whatever follows
            cluster.StandaloneCluster.wait_http(master.master_ui, 1.5, "the UI")
        else:
            with pytest.raises(TimeoutError, match="the UI"):
                cluster.StandaloneCluster.wait_http(master.master_ui, 1.5, "the UI")
    finally:
        other.close()
