"""An exact denoiser: E[eps | x_t] and E[x_0 | x_t] in closed form for Gaussian-mixture data.

A network trained with the usual loss ||eps - eps_theta(x_t, t)||^2 converges to the
conditional mean E[eps | x_t, t] (the minimiser of a squared error is the mean). For data
drawn from a mixture of Gaussians that mean is known exactly, so the samplers can be tested
and taught without training anything: whatever error remains is the sampler's own.

Notation (a = alpha_bar_t, the cumulative product of (1 - beta), ᾱ_t):

    data        x_0 ~ sum_k w_k N(mu_k, Sigma_k)                       weights w (K,), means (K, D), covs (K, D, D)
    noised      x_t = sqrt(a) x_0 + sqrt(1 - a) eps,  eps ~ N(0, I)    (Ho et al. 2020, eq. 4)
    component   x_t | k ~ N(sqrt(a) mu_k, S_k),  S_k = a Sigma_k + (1 - a) I
    resp.       r_k(x_t) = w_k N(x_t; sqrt(a) mu_k, S_k) / sum_j (same)   (Bayes' rule)
    eps mean    E[eps | x_t, k] = sqrt(1 - a) S_k^-1 (x_t - sqrt(a) mu_k)  (Gaussian conditioning)
    x_0 mean    E[x_0 | x_t, k] = mu_k + sqrt(a) Sigma_k S_k^-1 (x_t - sqrt(a) mu_k)
    overall     E[. | x_t] = sum_k r_k(x_t) E[. | x_t, k]

The eps form divides by nothing, so it stays finite as a -> 1 and a -> 0.
"""

import numpy as np

from tinydiff.diffusion import forward
from tinydiff.diffusion.checks import check_choice, check_generator, check_int


class GaussianMixture:
    """A mixture of K full-covariance Gaussians in D dimensions, with its exact denoiser.

    Parameters
    ----------
    weights : ndarray, shape (K,), positive; normalised to sum to 1
    means : ndarray, shape (K, D)
    covariances : ndarray, shape (K, D, D), symmetric positive definite
    """

    def __init__(self, weights, means, covariances):
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        mu = np.asarray(means, dtype=np.float64)
        cov = np.asarray(covariances, dtype=np.float64)
        if mu.ndim != 2:
            raise ValueError(f"means must have shape (K, D), got {mu.shape}")
        K, D = mu.shape
        if w.shape != (K,) or not np.all(w > 0) or not np.all(np.isfinite(w)):
            raise ValueError(f"weights must be {K} positive numbers (one per mean), got {np.asarray(weights)!r}")
        if cov.shape != (K, D, D):
            raise ValueError(f"covariances must have shape ({K}, {D}, {D}), got {cov.shape}")
        if not np.allclose(cov, np.swapaxes(cov, 1, 2)):
            raise ValueError("covariances must be symmetric")
        try:
            self._chol = np.linalg.cholesky(cov)  # (K, D, D), lower triangular
        except np.linalg.LinAlgError:
            raise ValueError("covariances must be positive definite") from None
        self.weights = w / w.sum()
        self.means = mu
        self.covariances = cov

    @classmethod
    def gaussian(cls, mean, covariance):
        """A single Gaussian N(mean, covariance); mean (D,), covariance (D, D)."""
        mean = np.asarray(mean, dtype=np.float64)
        return cls([1.0], mean[None], np.asarray(covariance, dtype=np.float64)[None])

    @property
    def dim(self):
        return self.means.shape[1]

    @property
    def mean(self):
        """Mean of the mixture, shape (D,)."""
        return self.weights @ self.means

    @property
    def covariance(self):
        """Covariance of the mixture (law of total covariance), shape (D, D)."""
        d = self.means - self.mean  # (K, D)
        within = np.einsum("k,kij->ij", self.weights, self.covariances)
        between = np.einsum("k,ki,kj->ij", self.weights, d, d)
        return within + between

    def sample(self, num_samples, generator, return_labels=False):
        """Draw `num_samples` points.

        Returns
        -------
        x : ndarray, shape (N, D); and labels (N,) of int if return_labels
        """
        n = check_int("num_samples", num_samples, 0)
        check_generator("generator", generator)
        if generator is None:
            raise ValueError("generator must be a numpy.random.Generator (tinydiff never uses global random state)")
        labels = generator.choice(len(self.weights), size=n, p=self.weights)
        z = generator.standard_normal((n, self.dim))
        x = self.means[labels] + np.einsum("nij,nj->ni", self._chol[labels], z)
        return (x, labels) if return_labels else x

    def _check_x(self, x):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x_t must have shape (B, {self.dim}), got {x.shape}")
        return x

    def _components(self, x, alpha_bar):
        """Per-component log N(x; sqrt(a) mu_k, S_k) (B, K) and S_k^-1 (x - sqrt(a) mu_k) (B, K, D)."""
        a = float(alpha_bar)
        if not 0.0 <= a <= 1.0:
            raise ValueError(f"alpha_bar must be in [0, 1], got {a}")
        D = self.dim
        S = a * self.covariances + (1.0 - a) * np.eye(D)  # (K, D, D)
        L = np.linalg.cholesky(S)  # (K, D, D); fails loudly if S is not positive definite
        S_inv = np.linalg.inv(S)  # (K, D, D); K small inverses beat B*K triangular solves
        diff = x[:, None, :] - np.sqrt(a) * self.means[None]  # (B, K, D)
        u = np.einsum("kij,bkj->bki", S_inv, diff)  # (B, K, D)
        logdet = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(-1)  # (K,)
        logpdf = -0.5 * (np.sum(diff * u, -1) + logdet + D * np.log(2 * np.pi))  # (B, K)
        return logpdf, u

    def responsibilities(self, x, alpha_bar=1.0):
        """p(k | x_t) for each component (Bayes' rule), shape (B, K); alpha_bar=1 classifies data."""
        x = self._check_x(x)
        logpdf, _ = self._components(x, alpha_bar)
        logp = logpdf + np.log(self.weights)
        logp -= logp.max(axis=1, keepdims=True)
        p = np.exp(logp)
        return p / p.sum(axis=1, keepdims=True)

    def log_prob(self, x, alpha_bar=1.0):
        """log density of x_t under the noised mixture (alpha_bar=1: the data), shape (B,)."""
        x = self._check_x(x)
        logpdf, _ = self._components(x, alpha_bar)
        logp = logpdf + np.log(self.weights)
        m = logp.max(axis=1, keepdims=True)
        return (m + np.log(np.exp(logp - m).sum(axis=1, keepdims=True)))[:, 0]

    def expected_epsilon(self, x_t, alpha_bar):
        """E[eps | x_t] for x_t at noise level alpha_bar: the ideal epsilon-prediction network.

        Parameters
        ----------
        x_t : ndarray, shape (B, D)
        alpha_bar : float in [0, 1)

        Returns
        -------
        eps : ndarray, shape (B, D), dtype of x_t
        """
        x = self._check_x(x_t)
        logpdf, u = self._components(x.astype(np.float64), alpha_bar)
        logp = logpdf + np.log(self.weights)
        r = np.exp(logp - logp.max(axis=1, keepdims=True))
        r /= r.sum(axis=1, keepdims=True)  # (B, K)
        eps = np.sqrt(1.0 - float(alpha_bar)) * np.einsum("bk,bkd->bd", r, u)
        return eps.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64, copy=False)

    def expected_x0(self, x_t, alpha_bar):
        """E[x_0 | x_t] (Tweedie's formula for this mixture), shape (B, D)."""
        x = self._check_x(x_t)
        logpdf, u = self._components(x.astype(np.float64), alpha_bar)
        logp = logpdf + np.log(self.weights)
        r = np.exp(logp - logp.max(axis=1, keepdims=True))
        r /= r.sum(axis=1, keepdims=True)  # (B, K)
        cond = self.means[None] + np.sqrt(float(alpha_bar)) * np.einsum("kij,bkj->bki", self.covariances, u)
        return np.einsum("bk,bkd->bd", r, cond).astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64)

    def predict(self, x_t, alpha_bar, prediction_type="epsilon"):
        """The ideal network output of the given prediction type: E[eps], E[x_0] or E[v] given x_t."""
        check_choice("prediction_type", prediction_type, forward.PREDICTION_TYPES)
        eps = self.expected_epsilon(x_t, alpha_bar)
        if prediction_type == "epsilon":
            return eps
        x0 = self.expected_x0(x_t, alpha_bar)
        if prediction_type == "sample":
            return x0
        return forward.velocity(x0, eps, alpha_bar)  # v is linear in (x_0, eps), so E[v] = v(E[x_0], E[eps])

    def as_model(self, alphas_cumprod, prediction_type="epsilon"):
        """A callable model(sample, timestep) -> output, the drop-in for a trained network.

        Parameters
        ----------
        alphas_cumprod : ndarray, shape (T,), the scheduler's alpha_bar per timestep
        prediction_type : {"epsilon", "sample", "v_prediction"}
        """
        ab = np.asarray(alphas_cumprod, dtype=np.float64)
        check_choice("prediction_type", prediction_type, forward.PREDICTION_TYPES)

        def model(sample, timestep):
            t = check_int("timestep", timestep, 0, len(ab) - 1)
            return self.predict(sample, ab[t], prediction_type)

        return model


def mixture_of_classes(class_mixtures, priors):
    """p(x) = sum_c p(c) p(x | c) as one GaussianMixture: every class's components, their
    weights times the class prior.

    Parameters
    ----------
    class_mixtures : list of C GaussianMixture, p(x | c), all of one dimension D
    priors : ndarray, shape (C,), p(c)
    """
    priors = np.asarray(priors, dtype=np.float64).reshape(-1)
    if len(priors) != len(class_mixtures):
        raise ValueError(f"priors: expected one per class ({len(class_mixtures)}), got {len(priors)}")
    return GaussianMixture(np.concatenate([p * m.weights for p, m in zip(priors, class_mixtures)]),
                           np.concatenate([m.means for m in class_mixtures]),
                           np.concatenate([m.covariances for m in class_mixtures]))


class ExactConditionalModel:
    """What a class-conditional network trained with condition dropout converges to, exactly.

    model(x_t (B, D), t (B,), labels (B,)) -> the ideal prediction (B, D): for label c < C that
    of p(x | c), for the null label C that of p(x) = sum_c p(c) p(x | c) (mixture_of_classes).
    It is called as `sample()` calls a network, one timestep for the whole batch, and its
    `config` names the null label, so guidance can be tested and taught with no training.

    Parameters
    ----------
    class_mixtures : list of C GaussianMixture, p(x | c)
    priors : ndarray, shape (C,), p(c)
    alphas_cumprod : ndarray, shape (T,), the scheduler's alpha_bar per timestep
    prediction_type : {"epsilon", "sample", "v_prediction"}
    null_class : bool
        False leaves class_embed_null_index out of the config: a model that cannot be guided.
    """

    def __init__(self, class_mixtures, priors, alphas_cumprod, prediction_type="epsilon", null_class=True):
        check_choice("prediction_type", prediction_type, forward.PREDICTION_TYPES)
        self.alphas_cumprod = np.asarray(alphas_cumprod, dtype=np.float64)
        self.prediction_type = prediction_type
        self.priors = np.asarray(priors, dtype=np.float64)
        self.mixtures = list(class_mixtures) + [mixture_of_classes(class_mixtures, priors)]  # index = label
        n = len(self.mixtures)
        self.config = {"num_class_embeds": n, "data_dim": self.mixtures[0].dim}
        if null_class:
            self.config["class_embed_null_index"] = n - 1

    def eval(self):
        return self

    def class_posterior(self, x):
        """p(c | x) of clean points x (N, D), shape (N, C): Bayes' rule with the exact densities."""
        log_joint = np.stack([m.log_prob(x) for m in self.mixtures[:-1]], axis=1) + np.log(self.priors)  # (N, C)
        p = np.exp(log_joint - log_joint.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    def __call__(self, x, t, labels):
        t = np.asarray(t)
        if not np.all(t == t.flat[0]):
            raise ValueError(f"t: expected one timestep for the whole batch, got {np.unique(t)}")
        a = self.alphas_cumprod[int(t.flat[0])]
        out = np.empty(x.shape, dtype=np.float64)
        for label, mixture in enumerate(self.mixtures):
            rows = labels == label
            if rows.any():
                out[rows] = mixture.predict(x[rows].astype(np.float64), a, self.prediction_type)
        return out


def example_mixture_2d():
    """The 2-D mixture the lessons and tests use: three unequal, differently shaped modes."""
    weights = [0.5, 0.3, 0.2]
    means = [[-1.2, -0.6], [1.2, -0.4], [0.0, 1.3]]
    covariances = [
        [[0.08, 0.05], [0.05, 0.08]],   # tilted ellipse
        [[0.04, 0.0], [0.0, 0.15]],     # tall and thin
        [[0.12, 0.0], [0.0, 0.02]],     # wide and flat
    ]
    return GaussianMixture(weights, means, covariances)
