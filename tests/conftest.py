"""Test-wide settings and shared fixtures.

Property-based tests are derandomized on CI (CI=true), so a CI run is reproducible; local runs
keep drawing new examples (and keep finding new cases).

``make test`` runs the suite in two pytest-xdist worker processes, each test file whole in one of
them (``--dist loadfile``: a file's module fixtures are built once and its tests run in file order,
as in a serial run). Each worker uses one torch thread (two workers on two cores; a test that wants
more sets it itself), and the fresh-virtualenv install test, the longest by far, is collected first
so that it starts at once instead of ending the run alone.
"""

import os

import pytest
import torch
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI", "").lower() == "true":
    settings.load_profile("ci")

if os.environ.get("PYTEST_XDIST_WORKER"):  # set by pytest-xdist in its worker processes
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """The ``install`` tests first, every other test in collection order (a stable sort: the same
    order in every xdist worker, as xdist requires)."""
    items.sort(key=lambda item: item.get_closest_marker("install") is None)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small models: one thread is as fast, and does not stall when other processes use the cores.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
