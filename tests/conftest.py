"""Test-wide settings and shared fixtures.

Property-based tests are derandomized on CI (CI=true), so a CI run is reproducible; local runs
keep drawing new examples (and keep finding new cases).
"""

import os

import pytest
import torch
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI", "").lower() == "true":
    settings.load_profile("ci")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small models: one thread is as fast, and does not stall when other processes use the cores.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
