"""A real CallFleet cluster for the integration tests: local Ray + Serve, the embedded
Redis (a real redis-server), real models. Started once per session on ports of its own,
stopped at the end, and checked for stray processes."""

from __future__ import annotations

import subprocess

import pytest

from cluster.runtime.lifecycle import down, up
from configs.settings import load_settings


@pytest.fixture(scope="session")
def cluster_settings(tmp_path_factory, trained_registry):
    state = tmp_path_factory.mktemp("callfleet-state")
    return load_settings(
        state_dir=str(state),
        registry_path=str(trained_registry.root),
        redis_port=6491,
        # the job server too: `ray job submit … -- callfleet deploy` (test_job_deploy.py)
        ray={"gcs_port": 6490, "num_cpus": 2, "metrics_port": 6492, "dashboard_port": 8165},
        serve={"http_port": 8100},
        gateway={"media_port": 8101},
        # the FreeSWITCH simulator on a port of its own; fast, mostly answered calls
        freeswitch={"port": 8121, "password": "integration-" + state.name,
                    "sim_ring_s": (0.3, 1.0), "sim_answer_rate": 0.8, "sim_busy_rate": 0.1},
        dialer={"max_bot_calls": 3, "api_token": "campaign-token"},
        api={"api_key": "supervisor-key"},
        routing={"wrap_up_s": 0, "offer_timeout_s": 15},
    )


@pytest.fixture(scope="session")
def cluster(cluster_settings):
    info = up(cluster_settings, status=lambda line: print("[up]", line))
    yield info
    stopped = down(cluster_settings, status=lambda line: print("[down]", line))
    assert "ray" in stopped and "redis" in stopped
    strays = subprocess.run(
        ["pgrep", "-f", ":6490|redis-server 127.0.0.1:6491"],
        capture_output=True, text=True,
    ).stdout.split()
    assert not strays, f"processes left running after down: {strays}"


@pytest.fixture
def driver(cluster):
    """A driver connected to the session cluster, even when a test before this one ran
    (and shut down) a Ray of its own in this process."""
    from cluster.runtime.lifecycle import connect_ray

    connect_ray(cluster.ray_address)
    return cluster


@pytest.fixture(scope="session")
def caller_voice():
    from telephony.sim.caller_voice import CallerVoice

    return CallerVoice()
