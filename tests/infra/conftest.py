"""Fixtures of the infra tests: a two-node Ray cluster started with infra/local/up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from infra_cluster import LocalCluster, running_cluster


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    """A Ray head (1 CPU, resource node_head) and a worker node (1 CPU, node_worker) on 127.0.0.1."""
    with running_cluster(tmp_path_factory.mktemp("raycluster"), ["ray_head", "ray_worker"]) as cl:
        yield cl
