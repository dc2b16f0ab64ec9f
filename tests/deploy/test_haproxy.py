"""HAProxy's configuration (checked by haproxy itself, with its replay lines), its detection window, and reading its
log (a redispatched retry's "+" included)."""

from __future__ import annotations

import subprocess

import pytest

from cifar10_pipeline.deploy.replicas import haproxy
from cifar10_pipeline.deploy.replicas.haproxy import Checks, Request, Transition

LOG = """\
[NOTICE]   (7) : haproxy version is 2.6.12-1+deb12u4
2026-12-02T16:19:41.578751+00:00 request server=replica-1 status=200 retries=0 term=-- accepted=1796228381.577
2026-12-02T16:19:41.581356+00:00 request server=replica-2 status=503 retries=+1 term=SH accepted=1796228381.579
[WARNING]  (7) : Server replicas/replica-2 is DOWN, reason: Layer4 connection problem, info: "Connection refused".
2026-12-02T16:19:43.542435+00:00 Server replicas/replica-2 is DOWN, reason: Layer4 connection problem.
2026-12-02T16:19:45.000000+00:00 request server=<NOSRV> status=-1 retries=0 term=CD accepted=1796228384.010
2026-12-02T16:19:50.500000+00:00 Server replicas/replica-2 is UP, reason: Layer7 check passed.
"""


def test_the_configuration_passes_haproxys_own_check_and_names_only_loopback_backends(tmp_path):
    text = haproxy.render_config(18000, 18003, tmp_path / "h.sock", [("replica-1", 18001), ("replica-2", 18002)],
                                 Checks(inter_ms=500, fall=3, rise=2, timeout_ms=800))
    config = tmp_path / "haproxy.cfg"
    config.write_text(text)
    checked = subprocess.run([haproxy.binary(), "-c", "-f", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    binds = [line.split()[1] for line in text.splitlines() if line.strip().startswith("bind ")]
    servers = [line.split()[2] for line in text.splitlines() if line.strip().startswith("server ")]
    assert binds == ["127.0.0.1:18000", "127.0.0.1:18003"]
    assert servers == ["127.0.0.1:18001", "127.0.0.1:18002"]
    assert "http-check send meth GET uri /readyz" in text
    assert "default-server check inter 500ms fall 3 rise 2" in text and "timeout check 800ms" in text
    # what replays a request its replica fails on the other one (test_haproxy_replay.py shows them at work)
    replay = ["option http-buffer-request", "retries 3", "option redispatch 1",
              "retry-on conn-failure empty-response junk-response 503", f"tune.bufsize {haproxy.BUFFER_BYTES}"]
    assert [line for line in replay if f"\n    {line}\n" in text] == replay


def test_a_broken_configuration_is_refused_with_haproxys_message(tmp_path):
    config = tmp_path / "haproxy.cfg"
    config.write_text("frontend serve\n    bind 127.0.0.1:18000\n    no-such-keyword\n")
    with pytest.raises(RuntimeError, match="(?s)haproxy refused .*no-such-keyword"):
        haproxy.start(config, tmp_path / "haproxy.log")


def test_the_detection_window_is_fall_checks_apart_plus_one_timeout():
    assert Checks().detection_window_s() == 3.0  # 2 x 1000 ms + 1000 ms
    assert Checks(inter_ms=500, fall=3, rise=2, timeout_ms=800).detection_window_s() == 2.3


def test_the_log_gives_requests_and_state_changes_with_their_times(tmp_path):
    log = tmp_path / "haproxy.log"
    log.write_text(LOG)
    requests, transitions = haproxy.read_log(log)
    assert requests == [
        Request("replica-1", 200, 0, "--", 1796228381.577),
        Request("replica-2", 503, 1, "SH", 1796228381.579, redispatched=True),  # "+1": sent to another server
        Request("<NOSRV>", -1, 0, "CD", 1796228384.010),
    ]
    # the stderr copy of a state change has no timestamp and is not read twice
    assert [(t.server, t.state) for t in transitions] == [("replica-2", "DOWN"), ("replica-2", "UP")]
    assert transitions[0].at == 1796228383.542435
    assert haproxy.down_intervals(transitions, "replica-2", until=2e9) == [(1796228383.542435, 1796228390.5)]
    still_down = [Transition("replica-1", "DOWN", 10.0)]
    assert haproxy.down_intervals(still_down, "replica-1", until=20.0) == [(10.0, 20.0)]
    assert haproxy.down_intervals(still_down, "replica-2", until=20.0) == []
