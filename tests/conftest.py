"""Shared test settings: hypothesis without deadlines (the first call of a Numba kernel
compiles or loads it from cache) and a small, fixed example budget so the suite stays fast.
Set HYPOTHESIS_PROFILE=thorough for a longer search. The fixture each_backend runs a test on
both kernel backends."""

import os

import pytest
from hypothesis import HealthCheck, settings

from tinydiff import kernels

settings.register_profile(
    "default", deadline=None, max_examples=15, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="module", params=kernels.BACKENDS)
def each_backend(request):
    """Run the test once on each backend (tinydiff.kernels.use): the fast Numba kernels and their
    NumPy reference twins are held to the same checks. Module-scoped, so that hypothesis's
    examples share it."""
    with kernels.use(request.param):
        yield request.param
