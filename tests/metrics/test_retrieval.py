"""Retrieval accuracy (tinydiff.metrics.retrieval) on similarity matrices built so that the
answer is known: the identity, a permutation, and attributes shared by chosen items."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff.metrics import attribute_retrieval, cosine_similarity_matrix, retrieval_top1


def permutation_similarity(perm, rng):
    """Caption i's best image is perm[i] (and image perm[i]'s best caption is i): the permutation
    matrix, plus noise too small to change any row's or column's order."""
    n = len(perm)
    s = np.zeros((n, n))
    s[np.arange(n), perm] = 1.0
    return s + 0.1 * rng.uniform(size=(n, n))


def test_the_identity_retrieves_every_pair():
    s = np.eye(5) + 0.1 * np.random.default_rng(0).uniform(size=(5, 5))
    assert retrieval_top1(s) == {"text_to_image": 1.0, "image_to_text": 1.0}
    colour = np.array([0, 1, 2, 0, 1])
    assert attribute_retrieval(s, {"colour": colour}) == {"text_to_image": {"colour": 1.0, "all": 1.0},
                                                          "image_to_text": {"colour": 1.0, "all": 1.0}}


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 9))
def test_a_permutation_is_right_on_its_fixed_points(seed, n):
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    fixed = np.mean(perm == np.arange(n))
    assert retrieval_top1(permutation_similarity(perm, rng)) == {"text_to_image": fixed, "image_to_text": fixed}


def test_attributes_count_a_retrieved_item_that_shares_them():
    # captions 0..3 retrieve images 1, 0, 3, 2 (swapped pairs); images 0, 1 share shape and colour,
    # images 2, 3 share only shape
    rng = np.random.default_rng(1)
    s = permutation_similarity(np.array([1, 0, 3, 2]), rng)
    attributes = {"shape": np.array(["circle", "circle", "square", "square"]), "colour": np.array([0, 0, 1, 2])}
    result = attribute_retrieval(s, attributes)
    expected = {"shape": 1.0, "colour": 0.5, "all": 0.5}
    assert result == {"text_to_image": expected, "image_to_text": expected}
    assert retrieval_top1(s) == {"text_to_image": 0.0, "image_to_text": 0.0}


def test_captions_against_a_different_set_of_images():
    # 2 captions, 3 images: caption 0 finds image 2 (red), caption 1 finds image 2 too;
    # image 0 finds caption 1, images 1 and 2 find caption 0
    s = np.array([[0.1, 0.9, 1.0],
                  [0.5, 0.2, 0.8]])
    text = {"colour": np.array(["red", "blue"])}
    images = {"colour": np.array(["blue", "red", "red"])}
    result = attribute_retrieval(s, text, images)
    assert result["text_to_image"] == {"colour": 0.5, "all": 0.5}
    assert result["image_to_text"] == {"colour": 1.0, "all": 1.0}


def test_cosine_similarity_matrix_of_matched_embeddings():
    rng = np.random.default_rng(2)
    e = rng.standard_normal((4, 3))
    s = cosine_similarity_matrix(e, 2.0 * e)
    np.testing.assert_allclose(np.diag(s), 1.0, rtol=1e-12)
    assert s.shape == (4, 4) and retrieval_top1(s) == {"text_to_image": 1.0, "image_to_text": 1.0}
    np.testing.assert_allclose(cosine_similarity_matrix(e[:2], e)[1], [e[1] @ f / np.linalg.norm(e[1]) / np.linalg.norm(f)
                                                                       for f in e], rtol=1e-12)


def test_clear_errors():
    with pytest.raises(ValueError, match=r"similarity: expected a square matrix.*\(2, 3\)"):
        retrieval_top1(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="similarity: expected a non-empty numeric matrix"):
        retrieval_top1(np.zeros(3))
    with pytest.raises(ValueError, match="similarity: 1 value"):
        retrieval_top1(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"text_attributes\['shape'\]: expected one label per item, shape \(2,\)"):
        attribute_retrieval(np.eye(2), {"shape": np.zeros(3)})
    with pytest.raises(TypeError, match="text_attributes: expected a non-empty dict"):
        attribute_retrieval(np.eye(2), np.zeros(2))
    with pytest.raises(ValueError, match="image_attributes: expected the names"):
        attribute_retrieval(np.eye(2), {"shape": [0, 1]}, {"colour": [0, 1]})
    with pytest.raises(ValueError, match="'all' names the share"):
        attribute_retrieval(np.eye(2), {"all": [0, 1]})
    with pytest.raises(ValueError, match="text_embeds, image_embeds: expected"):
        cosine_similarity_matrix(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="image_embeds: row 0 is all zeros"):
        cosine_similarity_matrix(np.ones((2, 3)), np.zeros((2, 3)))
