"""Retrieval with a CLIP-style model (Radford et al. 2021 measure their models so): given the
similarity of every caption to every image, does each caption's best image belong to it, and
does each image's best caption?

    similarity  (N_text, N_image), captions x images: cosine similarities, or CLIP's scaled
                logits (CLIPModel.logits_per_text); only each row's and column's order matters
    text to image   caption i retrieves image argmax_j similarity[i, j]
    image to text   image j retrieves caption argmax_i similarity[i, j]

Top-1 accuracy counts a retrieval right when it returns the item's own pair (caption i with
image i). Per-attribute accuracy asks less: right for attribute a when the retrieved item has
the same value of a (the same colour, say), so a caption that finds another red circle is right
for colour and shape; "all" asks for every attribute at once. Ties go to the lowest index
(numpy.argmax), so a constant similarity matrix retrieves item 0 for everything.
"""

import numpy as np

from tinydiff.nn.contrastive import l2_normalize


def check_similarity(similarity, square=False):
    s = np.asarray(similarity)
    if s.dtype.kind not in "fiu" or s.ndim != 2 or 0 in s.shape:
        raise ValueError(f"similarity: expected a non-empty numeric matrix (N_text, N_image), got shape {s.shape} "
                         f"and dtype {s.dtype}")
    if square and s.shape[0] != s.shape[1]:
        raise ValueError(f"similarity: expected a square matrix, caption i paired with image i, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"similarity: {int(s.size - np.count_nonzero(np.isfinite(s)))} value(s) are NaN/inf")
    return s


def cosine_similarity_matrix(text_embeds, image_embeds):
    """text_embeds (N_text, P), image_embeds (N_image, P) -> (N_text, N_image) cosine similarities,
    float64."""
    x, y = np.asarray(text_embeds, dtype=np.float64), np.asarray(image_embeds, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"text_embeds, image_embeds: expected (N_text, P) and (N_image, P) with one P, got shapes "
                         f"{x.shape} and {y.shape}")
    return l2_normalize(x, "text_embeds")[0] @ l2_normalize(y, "image_embeds")[0].T  # (N_t, P) x (P, N_i)


def retrieve(similarity):
    """-> (image_for_text (N_text,), text_for_image (N_image,)): each caption's best image and
    each image's best caption, as indices."""
    s = check_similarity(similarity)
    return np.argmax(s, axis=1), np.argmax(s, axis=0)


def retrieval_top1(similarity):
    """Top-1 accuracy both ways on a square matrix (caption i belongs to image i):
    {"text_to_image": fraction of captions whose best image is their own, "image_to_text": ...}."""
    image_for_text, text_for_image = retrieve(check_similarity(similarity, square=True))
    own = np.arange(len(image_for_text))
    return {"text_to_image": float(np.mean(image_for_text == own)),
            "image_to_text": float(np.mean(text_for_image == own))}


def check_attributes(attributes, name, count):
    """attributes: {name: labels (count,)}, labels of any comparable kind (ints, strings)."""
    if not isinstance(attributes, dict) or not attributes:
        raise TypeError(f"{name}: expected a non-empty dict attribute name -> labels, got {type(attributes).__name__}")
    if "all" in attributes:
        raise ValueError(f"{name}: 'all' names the share with every attribute right; rename that attribute")
    checked = {}
    for key, labels in attributes.items():
        labels = np.asarray(labels)
        if labels.shape != (count,):
            raise ValueError(f"{name}[{key!r}]: expected one label per item, shape ({count},), got {labels.shape}")
        checked[key] = labels
    return checked


def attribute_retrieval(similarity, text_attributes, image_attributes=None):
    """Per-attribute retrieval accuracy both ways.

    Parameters
    ----------
    similarity : ndarray (N_text, N_image)
    text_attributes : dict name -> labels (N_text,)
        What each caption says (e.g. {"shape": ..., "colour": ..., "size": ..., "position": ...}).
    image_attributes : dict name -> labels (N_image,), optional
        What each image shows, with the same names; by default text_attributes (a square matrix
        of pairs, caption i describing image i).

    Returns
    -------
    {"text_to_image": {name: fraction, ..., "all": fraction}, "image_to_text": {...}}: the share
    of captions whose retrieved image has the caption's value of each attribute (of all of them,
    for "all"), and of images whose retrieved caption has the image's.
    """
    s = check_similarity(similarity, square=image_attributes is None)
    text_attributes = check_attributes(text_attributes, "text_attributes", s.shape[0])
    image_attributes = check_attributes(text_attributes if image_attributes is None else image_attributes,
                                        "image_attributes", s.shape[1])
    if set(image_attributes) != set(text_attributes):
        raise ValueError(f"image_attributes: expected the names of text_attributes {sorted(text_attributes)}, got "
                         f"{sorted(image_attributes)}")
    image_for_text, text_for_image = retrieve(s)
    result = {}
    for direction, queries, found, retrieved in (("text_to_image", text_attributes, image_attributes, image_for_text),
                                                 ("image_to_text", image_attributes, text_attributes, text_for_image)):
        right = {name: queries[name] == found[name][retrieved] for name in queries}  # (N_query,) booleans each
        result[direction] = {name: float(np.mean(r)) for name, r in right.items()}
        result[direction]["all"] = float(np.mean(np.logical_and.reduce(list(right.values()))))
    return result
