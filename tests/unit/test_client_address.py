"""The client address behind trusted proxies (mediaserver/client_address.py)."""

from __future__ import annotations

import pytest

from mediaserver.client_address import TrustedProxies, parse_networks
from mediaserver.config import ConfigError, load_config


@pytest.mark.parametrize(
    ("trusted", "peer", "header", "client"),
    [
        ((), "127.0.0.1", ["1.2.3.4"], "127.0.0.1"),  # nothing trusted: header ignored
        (("10.0.0.0/8",), "192.0.2.9", ["1.2.3.4"], "192.0.2.9"),  # untrusted peer
        (("10.0.0.0/8",), "10.1.2.3", ["1.2.3.4"], "1.2.3.4"),
        # the right-most untrusted entry: a client cannot prepend its own choice
        (("10.0.0.0/8",), "10.1.2.3", ["6.6.6.6, 1.2.3.4, 10.9.9.9"], "1.2.3.4"),
        (("10.0.0.0/8",), "10.1.2.3", ["6.6.6.6", "1.2.3.4,10.9.9.9"], "1.2.3.4"),
        # a malformed entry ends the walk at the last good address
        (("10.0.0.0/8",), "10.1.2.3", ["1.2.3.4, garbage"], "10.1.2.3"),
        (("10.0.0.0/8",), "10.1.2.3", ["garbage, 1.2.3.4"], "1.2.3.4"),
        (("10.0.0.0/8",), "10.1.2.3", ["1.2.3.4:5678"], "1.2.3.4"),
        (("::1",), "::1", ["[2001:db8::7]:443"], "2001:db8::7"),
        (("10.0.0.0/8",), "10.1.2.3", ["10.0.0.7, 10.0.0.8"], "10.0.0.7"),  # all trusted
        (("10.0.0.0/8",), "10.1.2.3", [""], "10.1.2.3"),
    ],
)
def test_client_behind_proxies(trusted, peer, header, client):
    assert TrustedProxies(trusted).client(peer, header) == client


def test_networks_are_validated():
    assert [str(n) for n in parse_networks(["10.0.0.0/8", "127.0.0.1"])] == [
        "10.0.0.0/8",
        "127.0.0.1/32",
    ]
    with pytest.raises(ValueError, match="not an IP address or network: 'nope'"):
        parse_networks(["nope"])
    config = load_config(None, env={"MEDIASERVER_SERVER_TRUSTED_PROXIES": "10.0.0.0/8,::1"})
    assert config.server.trusted_proxies == ("10.0.0.0/8", "::1")
    with pytest.raises(ConfigError, match=r"server\.trusted_proxies"):
        load_config(None, env={"MEDIASERVER_SERVER_TRUSTED_PROXIES": "10.0.0.0/33"})
