"""Test-wide settings: property-based tests are derandomized on CI (CI=true), so a CI run is
reproducible; local runs keep drawing new examples (and keep finding new cases)."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI", "").lower() == "true":
    settings.load_profile("ci")
