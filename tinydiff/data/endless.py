"""What the data sets made on the fly share: image i is drawn from its own random stream keyed
by (seed, i), so a set has no end, any non-negative index is valid, and a slice needs a stop."""

from tinydiff.data.checks import check_indices, slice_to_indices


class EndlessDataset:
    """Base of GlyphDataset and ShapeDataset, whose image i is drawn from
    np.random.default_rng((seed, i)): get(indices) checks the indices and hands them to the
    subclass's render(idx), which draws the images; `dataset[a:b]` is `dataset.get(range(a, b))`."""

    def get(self, indices):
        """Render the images with the given indices.

        Parameters
        ----------
        indices : sequence of int, shape (N,)
            Any non-negative integers; the data set has no end.

        Returns
        -------
        images, labels : as the subclass's render() gives them: images (N, C, H, W), float32 in
            [-1, 1] with background -1, and the labels of each image
        """
        return self.render(check_indices(indices))

    def __getitem__(self, key):
        """`dataset[a:b]` is `dataset.get(range(a, b))`."""
        return self.get(slice_to_indices(key, type(self).__name__))
