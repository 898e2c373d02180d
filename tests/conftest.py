"""Fixtures shared by every test: a running kubesim and real clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

from kubesim import KubeSim


@pytest.fixture
def sim() -> Iterator[KubeSim]:
    with KubeSim(bookmark_interval=0.5) as s:
        yield s


@pytest.fixture
def sim_workloads() -> Iterator[KubeSim]:
    with KubeSim(controllers=True, nodes=2, bookmark_interval=0.5) as s:
        yield s


@pytest.fixture
def kubeconfig(sim: KubeSim, tmp_path: Path) -> Path:
    return sim.write_kubeconfig(tmp_path / "kubeconfig")


def api_client_for(sim: KubeSim, tmp_path: Path, token: str | None = None) -> client.ApiClient:
    path = sim.write_kubeconfig(tmp_path / f"kubeconfig-{token or 'anon'}", token=token)
    return config.new_client_from_config(config_file=str(path))


@pytest.fixture
def api_client(sim: KubeSim, tmp_path: Path) -> Iterator[client.ApiClient]:
    c = api_client_for(sim, tmp_path)
    yield c
    c.close()


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def dyn(api_client: client.ApiClient, tmp_path: Path) -> DynamicClient:
    # A cache file per test: the default one is keyed by host:port, which a later
    # emulator may reuse, and would then serve a stale discovery document.
    return DynamicClient(api_client, cache_file=str(tmp_path / "discovery-cache.json"))
