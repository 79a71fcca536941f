"""Sample-quality measures.

    distances.py       energy distance and sliced Wasserstein distance between two sample sets
    frechet.py         Frechet distance between Gaussians fitted to features
    glyph_quality.py   GlyphJudge: recognised share, class histogram, Frechet distance of glyphs
"""

from tinydiff.metrics.distances import energy_distance, sliced_wasserstein
from tinydiff.metrics.frechet import feature_statistics, frechet_distance
from tinydiff.metrics.glyph_quality import GlyphJudge

__all__ = ["GlyphJudge", "energy_distance", "feature_statistics", "frechet_distance", "sliced_wasserstein"]
