"""Integration fixtures: real namespaces, each test under its own unique prefix,
removed afterwards even when the test fails."""

from __future__ import annotations

import itertools
import os

import pytest
from labkit import Lab, in_root_namespace, remove_prefixed, root_firewall_and_qdiscs

RUN_TAG = f"nkt{os.getpid() % 100000}"
_counter = itertools.count()


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="integration tests need root (they build network namespaces)")
    for item in items:
        if "integration" in item.nodeid.split("/"):
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _sweep_run_namespaces():
    """Whatever a test left behind under this run's tag goes at the end, too."""
    yield
    remove_prefixed(RUN_TAG + "-")  # (the dash: nkt2847 must not sweep nkt28476-)


@pytest.fixture(autouse=True)
def _root_namespace_untouched(request):
    """No test may change the root namespace's firewall or qdiscs (DESIGN.md's
    safety rules): compared before and after every integration test."""
    if os.geteuid() != 0:
        yield
        return
    before = root_firewall_and_qdiscs()
    yield
    assert root_firewall_and_qdiscs() == before, f"{request.node.name} changed the root namespace's nft or qdiscs"
    # A test that failed half-way through a namespace switch must not leave the
    # next ones running their commands elsewhere.
    assert in_root_namespace(), f"{request.node.name} left this process's thread in another network namespace"


@pytest.fixture
def prefix():
    """A namespace prefix unique to this test; its namespaces are removed afterwards."""
    value = f"{RUN_TAG}-{next(_counter)}-"
    yield value
    remove_prefixed(value)


@pytest.fixture
def state_dir(tmp_path):
    return tmp_path / "state"


@pytest.fixture
def lab(prefix, state_dir):
    return Lab(prefix, state_dir)
