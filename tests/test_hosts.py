"""The Host guard against DNS rebinding (mock_server.protocol.hosts)."""
from __future__ import annotations

import pytest

from mock_server.protocol.hosts import HostPolicy, host_name


@pytest.mark.parametrize(("value", "name"), [
    ("localhost:8484", "localhost"), ("[::1]:8484", "::1"), ("127.0.0.1", "127.0.0.1"),
    ("Queue.Fal.Run", "queue.fal.run"), ("example.com.:80", "example.com"), ("::1", "::1"),
])
def test_host_name_drops_port_brackets_and_case(value, name):
    assert host_name(value) == name


def test_a_loopback_server_answers_this_machine_and_fals_hosts_only():
    policy = HostPolicy("127.0.0.1")
    for host in ("localhost:8484", "127.0.0.1:8484", "127.5.6.7", "[::1]:8484", "app.localhost",
                 "queue.fal.run", "fal.run", "rest.alpha.fal.ai", "v3.fal.media", "queue.localhost:1", ""):
        assert policy.allows(host), host
    for host in ("rebind.evil.example:8484", "evil.example", "fal.run.evil.example", "notfal.run", "10.0.0.5",
                 "x", "localhost.evil.example"):
        assert not policy.allows(host), host


def test_another_interface_answers_any_name_unless_the_user_lists_them():
    assert HostPolicy("0.0.0.0").allows("mybox.lan:8484")
    listed = HostPolicy("0.0.0.0", ("mybox.lan",))
    assert listed.allows("mybox.lan:8484") and listed.allows("queue.fal.run")
    assert not listed.allows("rebind.evil.example")
