"""Network settings: announced addresses per local address, one media port per worker."""

from __future__ import annotations

import pytest

from mediaserver.config import ConfigError, announced_map, load_config
from mediaserver.sfu.negotiation import apply_announced_address

SDP = (
    "a=candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host\r\n"
    "a=candidate:2 1 udp 2130706175 fd00::5 40000 typ host generation 0\r\n"
    "a=candidate:3 1 udp 2130706175 10.1.0.9 40000 typ host\r\n"
    "a=candidate:4 1 udp 16777215 198.51.100.7 3478 typ relay raddr 10.0.0.5 rport 1\r\n"
)


def test_each_local_address_gets_its_own_announced_address():
    mapping = {"10.0.0.5": "203.0.113.7", "fd00:0::5": "2001:db8::5"}
    out = apply_announced_address(SDP, "", mapping)
    assert "203.0.113.7 40000 typ host\r\n" in out
    assert "2001:db8::5 40000 typ host generation 0" in out
    assert "10.1.0.9 40000 typ host" in out  # not mapped, no default: unchanged
    assert "198.51.100.7 3478 typ relay" in out  # only host candidates are rewritten
    out = apply_announced_address(SDP, "192.0.2.1", mapping)
    assert "192.0.2.1 40000 typ host" in out and "203.0.113.7 40000" in out


def test_config_mapping():
    env = {
        "MEDIASERVER_RTC_ANNOUNCED_ADDRESSES": "10.0.0.5=203.0.113.7, fd00::5=2001:db8::5",
        "MEDIASERVER_RTC_ICE_ADDRESSES": "10.0.0.5,fd00::5",
    }
    config = load_config(None, env=env)
    assert announced_map(config.rtc) == {"10.0.0.5": "203.0.113.7", "fd00::5": "2001:db8::5"}
    for bad in ("10.0.0.5", "10.0.0.5=not-an-ip", "0.0.0.0=203.0.113.7"):
        with pytest.raises(ConfigError, match=r"rtc\.announced_addresses\[0\]"):
            load_config(None, env={"MEDIASERVER_RTC_ANNOUNCED_ADDRESSES": bad})


def test_one_media_port_per_worker():
    from mediaserver.cli import worker_udp_ports

    assert worker_udp_ports(50000, (), 3) == [50000, 50001, 50002]
    assert worker_udp_ports(50000, (41000, 42000, 43000), 2) == [41000, 42000]
    assert worker_udp_ports(0, (), 4) == []
    with pytest.raises(ValueError, match="2 ports for 3 workers"):
        worker_udp_ports(0, (41000, 42000), 3)
