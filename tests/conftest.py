"""Shared test settings: hypothesis without deadlines (the first call of a Numba kernel
compiles or loads it from cache) and a small, fixed example budget so the suite stays fast.
Set HYPOTHESIS_PROFILE=thorough for a longer search."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, max_examples=15, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
