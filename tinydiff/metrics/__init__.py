"""Sample-quality measures.

    distances.py       energy distance and sliced Wasserstein distance between two sample sets; a set's spread,
                       and within each class against real data's
    manifold.py        k-NN precision and recall: the share of samples on the data manifold, and of data covered
    modes.py           modes covered of gaussians8's 8, and the share of samples within 3 sigma of a mode
    frechet.py         Frechet distance between Gaussians fitted to features
    glyph_quality.py   GlyphJudge: recognised share, class histogram, Frechet distance of glyphs
    cost.py            count_macs: multiply-accumulates of one forward pass, counted by running it
    shapes_quality.py  shape validity of Shapes samples from the pixels, sharpness against real images
    prompt_adherence.py  which attributes a text-to-image sample gets right, read from its pixels
    retrieval.py       caption-to-image and image-to-caption retrieval: top-1 and per attribute
"""

from tinydiff.metrics.cost import count_macs
from tinydiff.metrics.distances import class_diversity, energy_distance, mean_pairwise_distance, sliced_wasserstein
from tinydiff.metrics.frechet import feature_statistics, frechet_distance
from tinydiff.metrics.glyph_quality import GlyphJudge
from tinydiff.metrics.manifold import in_knn_manifold, knn_precision_recall
from tinydiff.metrics.modes import gaussians8_coverage, gaussians8_modes, mode_coverage
from tinydiff.metrics.prompt_adherence import PromptAdherence, prompt_adherence
from tinydiff.metrics.retrieval import attribute_retrieval, cosine_similarity_matrix, retrieval_top1
from tinydiff.metrics.shapes_quality import high_frequency_energy, shape_checks, shapes_quality

__all__ = ["GlyphJudge", "PromptAdherence", "attribute_retrieval", "class_diversity", "cosine_similarity_matrix",
           "count_macs", "energy_distance", "feature_statistics", "frechet_distance", "gaussians8_coverage",
           "gaussians8_modes", "high_frequency_energy", "in_knn_manifold", "knn_precision_recall",
           "mean_pairwise_distance", "mode_coverage", "prompt_adherence", "retrieval_top1", "shape_checks",
           "shapes_quality", "sliced_wasserstein"]
