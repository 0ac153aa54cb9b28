"""Ports for the servers the tests and the launchers start: never from the ephemeral range."""

from __future__ import annotations

import socket

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
