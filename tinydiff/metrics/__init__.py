"""Sample-quality measures.

    distances.py   energy distance and sliced Wasserstein distance between two sample sets
"""

from tinydiff.metrics.distances import energy_distance, sliced_wasserstein

__all__ = ["energy_distance", "sliced_wasserstein"]
