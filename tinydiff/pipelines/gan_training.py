"""Train a GAN (Goodfellow et al. 2014) with the non-saturating loss, on a wall-clock budget.

Notation:
    G(z)      the generator's sample for a latent z ~ N(0, I)
    D(x)      the discriminator's LOGIT for x; sigma(D(x)) is its probability that x is real
    softplus  softplus(a) = log(1 + exp(a)), so -log sigma(a) = softplus(-a) and
              -log(1 - sigma(a)) = softplus(a)

The two losses, each a mean over the batch:
    L_D = -log sigma(D(x)) - log(1 - sigma(D(G(z))))             Goodfellow et al. 2014, eq. 1
        = softplus(-D(x)) + softplus(D(G(z)))                     (D ascends eq. 1's value)
    L_G = -log sigma(D(G(z))) = softplus(-D(G(z)))                Goodfellow et al. 2014, sec. 3
The minimax game of eq. 1 has G minimise log(1 - sigma(D(G(z)))) instead; sec. 3 explains why not:
early on D rejects G's samples confidently, that term saturates (its gradient sigma(D) -> 0),
and G stops learning. The non-saturating L_G has the same fixed point and a gradient
sigma(D) - 1 -> -1 exactly where G is worst.

How D's gradient reaches G. No autograd records a graph: each module's backward returns the
gradient with respect to its input. So G's step is three explicit calls (generator_gradients, stage 3 of gan_step):
    d L_G / d logits          generator_loss, (B,)
    d L_G / d x   = D.backward(d L_G / d logits)     D's chain rule down to its INPUT x = G(z)
    d L_G / d theta_G: G.backward(d L_G / d x)       continues the same chain into G
D.backward also adds into D's parameter gradients; they are not used (G's optimizer steps only
G's parameters) and are zeroed before D's next step. This is what `loss_G.backward()` does in
PyTorch, through the detach-less graph D(G(z)).

Randomness is keyed: step s draws its latents from default_rng([seed, 1, s]) and its real batch
from the data source at index s, so a run of a given number of steps is the same every time
(and a budget-stopped run is a prefix of a longer one). Optimizer: Adam with lr 2e-4 and
beta1 = 0.5 (Radford et al. 2016, sec. 4), as AdamW with weight_decay = 0.
"""

import time

import numpy as np

from tinydiff.nn.activation import sigmoid
from tinydiff.optim import AdamW
from tinydiff.pipelines.train_config import check_float_field, check_int_field

LATENT_STREAM = 1  # default_rng([seed, LATENT_STREAM, step]): the latents of step `step`


def softplus(a):
    """log(1 + exp(a)) without overflow."""
    return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))


def logistic_loss(logits, real):
    """Binary cross-entropy on logits (B,) against one label for the whole batch
    -> (loss, d loss / d logits):
        real=True:   mean -log sigma(a)     = mean softplus(-a),  gradient (sigma(a) - 1) / B
        real=False:  mean -log(1 - sigma(a)) = mean softplus(a),  gradient sigma(a) / B"""
    if real:
        return float(softplus(-logits).mean()), (sigmoid(logits) - 1) / len(logits)
    return float(softplus(logits).mean()), sigmoid(logits) / len(logits)


def discriminator_loss(logits_real, logits_fake):
    """L_D (Goodfellow et al. 2014, eq. 1, negated) for logits (B,) and (B',)
    -> (loss, d loss / d logits_real, d loss / d logits_fake)."""
    loss_real, d_real = logistic_loss(logits_real, real=True)
    loss_fake, d_fake = logistic_loss(logits_fake, real=False)
    return loss_real + loss_fake, d_real, d_fake


def generator_loss(logits_fake):
    """Non-saturating L_G = mean softplus(-D(G(z))) (Goodfellow et al. 2014, sec. 3): the fakes
    scored as if labelled real -> (loss, d loss / d logits_fake)."""
    return logistic_loss(logits_fake, real=True)


class GANTrainConfig:
    """How to train a GAN: batch_size, lr_g, lr_d, beta1, beta2, seed; max_steps and/or
    budget_seconds (training time, evaluations excluded) bound the run; log_every (steps
    between logged loss means) and eval_every (steps between quality measurements)."""

    def __init__(self, batch_size=64, lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, seed=0, max_steps=None,
                 budget_seconds=None, log_every=50, eval_every=200):
        check_int_field("batch_size", batch_size, 2)
        for name, value in (("lr_g", lr_g), ("lr_d", lr_d)):
            check_float_field(name, value, 0.0, low_open=True)
        for name, value in (("beta1", beta1), ("beta2", beta2)):
            check_float_field(name, value, 0.0, 1.0, high_open=True)
        check_int_field("seed", seed, 0)
        if max_steps is None and budget_seconds is None:
            raise ValueError("GANTrainConfig: give max_steps, budget_seconds or both (the run must end)")
        if max_steps is not None:
            check_int_field("max_steps", max_steps, 1)
        if budget_seconds is not None:
            check_float_field("budget_seconds", budget_seconds, 0.0, low_open=True)
        check_int_field("log_every", log_every, 1)
        check_int_field("eval_every", eval_every, 1)
        self.batch_size, self.lr_g, self.lr_d, self.beta1, self.beta2 = batch_size, lr_g, lr_d, beta1, beta2
        self.seed, self.max_steps, self.budget_seconds = seed, max_steps, budget_seconds
        self.log_every, self.eval_every = log_every, eval_every

    def as_dict(self):
        return dict(vars(self))


def gan_step(generator, discriminator, opt_g, opt_d, real, z):
    """One training step: D on a real and a fake batch, then G through D. Both modules in
    training mode. Returns the step's numbers (losses, mean D probabilities).

    real : (B, ...) data batch;  z : (B, latent_dim) latents."""
    # 1. one forward of G; its cache stays for stage 3 (D's forwards do not touch it)
    fake = generator(z)
    # 2. D step: ascend eq. 1 on real and fake. Two separate batches, as in DCGAN, so that
    #    BatchNorm's statistics are never a mix of real and fake.
    #    Each half's backward right after its forward (a module keeps one cache at a time).
    opt_d.zero_grad()
    logits_real = discriminator(real)
    loss_real, d_real = logistic_loss(logits_real, real=True)
    discriminator.backward(d_real)
    logits_fake = discriminator(fake)
    loss_fake, d_fake = logistic_loss(logits_fake, real=False)
    discriminator.backward(d_fake)  # the gradient w.r.t. fake is dropped: G is held fixed here
    d_loss = loss_real + loss_fake  # = discriminator_loss(logits_real, logits_fake)[0]
    opt_d.step()
    # 3. G step: the non-saturating loss through the UPDATED D, down to D's input, into G
    g_loss = generator_gradients(generator, discriminator, fake)
    opt_g.step()
    if not (np.isfinite(d_loss) and np.isfinite(g_loss)):
        raise FloatingPointError(f"GAN training diverged: d_loss={d_loss}, g_loss={g_loss}")
    return {"d_loss": d_loss, "g_loss": g_loss, "d_real": float(sigmoid(logits_real).mean()),
            "d_fake": float(sigmoid(logits_fake).mean())}


def generator_gradients(generator, discriminator, fake):
    """Fill the generator's .grad with d L_G / d theta_G for fake = G(z), the forward whose cache
    the generator holds; returns L_G. D's parameter gradients are written too, and not used."""
    logits = discriminator(fake)
    g_loss, d_logits = generator_loss(logits)
    d_fake_images = discriminator.backward(d_logits)  # d L_G / d G(z): D's INPUT gradient
    generator.zero_grad()
    generator.backward(d_fake_images)  # d L_G / d theta_G, the chain rule continued through G
    return g_loss


def latents_for_step(generator, config, step):
    """The latents of training step `step`: keyed by (seed, step), never by what ran before."""
    return generator.sample_latents(config.batch_size, np.random.default_rng([config.seed, LATENT_STREAM, step]))


def train_gan(generator, discriminator, real_batch, config, evaluate=None, progress=None):
    """Train until max_steps or budget_seconds of training time (whichever comes first).

    Parameters
    ----------
    generator, discriminator : Module
        A generator with sample_latents(n, rng); a discriminator returning logits (B,).
    real_batch : callable step -> ndarray (batch_size, ...)
        The real data of a step, keyed by the step (glyph_batches, ring_batches).
    config : GANTrainConfig
    evaluate : callable generator -> dict of floats, optional
        Sample quality, measured at step 0, every eval_every steps and at the end; its time is
        not counted in the budget. The generator is put back in training mode after it.
    progress : callable str -> None, optional
        Gets one line per log (e.g. print).

    Returns
    -------
    dict: steps (done), train_seconds, log (list of dicts: step, seconds, d_loss, g_loss,
    d_real, d_fake means over the last log_every steps), quality (list of dicts: step,
    seconds and evaluate's numbers).
    """
    if not isinstance(config, GANTrainConfig):
        raise TypeError(f"config: expected a GANTrainConfig, got {type(config).__name__}")
    opt_g = AdamW(generator.parameters(), lr=config.lr_g, betas=(config.beta1, config.beta2), weight_decay=0.0)
    opt_d = AdamW(discriminator.parameters(), lr=config.lr_d, betas=(config.beta1, config.beta2), weight_decay=0.0)
    generator.train()
    discriminator.train()
    history = {"steps": 0, "train_seconds": 0.0, "log": [], "quality": [], "config": config.as_dict()}
    window = []

    def measure(step):
        if evaluate is not None:
            result = evaluate(generator)
            generator.train()
            history["quality"].append({"step": step, "seconds": history["train_seconds"], **result})
            if progress:
                progress(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in result.items()
                                                      if isinstance(v, float)))

    measure(0)
    step = 0
    while config.max_steps is None or step < config.max_steps:
        if config.budget_seconds is not None and history["train_seconds"] >= config.budget_seconds:
            break
        start = time.perf_counter()
        real = real_batch(step)
        window.append(gan_step(generator, discriminator, opt_g, opt_d, real, latents_for_step(generator, config, step)))
        history["train_seconds"] += time.perf_counter() - start
        step += 1
        history["steps"] = step
        if step % config.log_every == 0:
            means = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
            history["log"].append({"step": step, "seconds": history["train_seconds"], **means})
            window = []
        if step % config.eval_every == 0:
            measure(step)
    if step % config.eval_every:
        measure(step)
    return history


def sample_gan(generator, n, rng, batch_size=500):
    """n samples, one generator pass per batch, in eval mode (BatchNorm uses its running
    statistics, so a sample does not depend on the others in its batch)."""
    generator.eval()
    out = [generator(generator.sample_latents(min(batch_size, n - start), rng)) for start in range(0, n, batch_size)]
    return np.concatenate(out)


# ---- the two set-ups of issue 17: glyphs and the ring -------------------------------------------
GLYPH_SIZE = 16  # the resolution all four models of lesson 11 share (GAN_READY.md)


def glyph_batches(seed, batch_size, size=GLYPH_SIZE):
    """step -> real glyphs (batch_size, 1, size, size) in [-1, 1], 8-bit values: images
    [step * B, (step + 1) * B) of GlyphDataset(seed, size), so every step sees new ones."""
    from tinydiff.data import GlyphDataset

    data = GlyphDataset(seed=seed, size=size)
    return lambda step: data[step * batch_size:(step + 1) * batch_size][0]


def ring_batches(seed, batch_size, noise=0.1):
    """step -> gaussians8 points (batch_size, 2), drawn from default_rng([seed, step])."""
    from tinydiff.data import gaussians8

    return lambda step: gaussians8(batch_size, np.random.default_rng([seed, step]), noise=noise)


def ring_evaluator(num_samples=2500, seed=12345, noise=0.1):
    """generator -> modes covered (of 8) and high-quality share (tinydiff.metrics.modes) of
    num_samples samples from fixed latents (the same at every evaluation)."""
    from tinydiff.metrics.modes import gaussians8_coverage

    def evaluate(generator):
        result = gaussians8_coverage(sample_gan(generator, num_samples, np.random.default_rng(seed)), noise=noise)
        return {"modes_covered": float(result["modes_covered"]), "high_quality_share": result["high_quality_share"]}

    return evaluate


def glyph_evaluator(judge, num_samples=256, seed=12345):
    """generator -> the GlyphJudge's recognised share, junk share, Frechet distance and digit
    coverage (digits predicted for at least 2 % of the samples) of num_samples samples from fixed
    latents."""

    def evaluate(generator):
        score = judge.score(sample_gan(generator, num_samples, np.random.default_rng(seed)))
        return {"recognised": score["recognised"], "junk": score["junk"], "frechet": float(score["frechet"]),
                "digits_covered": float((score["histogram"] >= 0.02).sum())}

    return evaluate


def make_glyph_gan(seed=0, base_channels=32, latent_dim=64):
    """(DCGANGenerator, DCGANDiscriminator) for 1x16x16 glyphs, DCGAN's N(0, 0.02) init, seeded."""
    from tinydiff.models.gan import DCGANDiscriminator, DCGANGenerator

    rng = np.random.default_rng([seed, 0])
    return (DCGANGenerator(latent_dim=latent_dim, image_size=GLYPH_SIZE, base_channels=base_channels, rng=rng),
            DCGANDiscriminator(image_size=GLYPH_SIZE, base_channels=base_channels, rng=rng))


def glyph_gan_config(seed=0, budget_seconds=240.0, eval_every=200):
    """The glyph DCGAN's training settings: batch 64, Adam 2e-4 with beta1 0.5 for both networks
    (Radford et al. 2016, sec. 4), stopped after budget_seconds of training (4 minutes: issue 17's
    equal budget)."""
    return GANTrainConfig(batch_size=64, lr_g=2e-4, lr_d=2e-4, seed=seed, budget_seconds=budget_seconds,
                          log_every=50, eval_every=eval_every)


def ring_gan_config(seed=0, budget_seconds=30.0, eval_every=500):
    """The ring GAN's settings: batch 256, Adam 1e-3 with beta1 0.5 (a small MLP tolerates the larger
    step; at 2e-4 it needs several times the steps), stopped after budget_seconds of training."""
    return GANTrainConfig(batch_size=256, lr_g=1e-3, lr_d=1e-3, seed=seed, budget_seconds=budget_seconds,
                          log_every=100, eval_every=eval_every)


def make_ring_gan(seed=0, hidden=128, num_layers=3, latent_dim=8):
    """(MLPGenerator, MLPDiscriminator) for 2-D points, PyTorch's default init, seeded."""
    from tinydiff.models.gan import MLPDiscriminator, MLPGenerator

    rng = np.random.default_rng([seed, 0])
    return (MLPGenerator(latent_dim=latent_dim, hidden=hidden, num_layers=num_layers, rng=rng),
            MLPDiscriminator(hidden=hidden, num_layers=num_layers, rng=rng))


# ---- files: a folder with generator/ and discriminator/ model folders and the training history --
def gan_model_classes():
    from tinydiff.models.gan import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator

    return {cls.__name__: cls for cls in (DCGANGenerator, DCGANDiscriminator, MLPGenerator, MLPDiscriminator)}


def save_gan(path, generator, discriminator, history=None):
    """Write `path`/generator and `path`/discriminator (config.json + safetensors weights,
    BatchNorm running statistics included) and `path`/history.json, atomically."""
    from tinydiff.files import save_arrays, write_folder_atomically, write_json
    from tinydiff.pipelines.checkpoint import CONFIG_NAME, WEIGHTS_NAME, model_config

    def write(tmp):
        for name, model in (("generator", generator), ("discriminator", discriminator)):
            (tmp / name).mkdir()
            write_json(tmp / name / CONFIG_NAME, model_config(model))
            save_arrays(tmp / name / WEIGHTS_NAME, model.state_dict(), np.float32)
        if history is not None:
            write_json(tmp / "history.json", history)

    write_folder_atomically(path, write)


def load_gan_model(path):
    """The generator or discriminator saved in model folder `path` (e.g. saved/generator)."""
    from pathlib import Path

    from tinydiff.files import load_arrays, read_json
    from tinydiff.pipelines.checkpoint import CONFIG_NAME, WEIGHTS_NAME

    path = Path(path)
    config = read_json(path / CONFIG_NAME)
    classes = gan_model_classes()
    name = config.get("_class_name") if isinstance(config, dict) else None
    if name not in classes:
        raise ValueError(f"{path / CONFIG_NAME}: _class_name {name!r} is not one of {sorted(classes)}")
    model = classes[name](**{k: v for k, v in config.items() if not k.startswith("_")})
    model.load_state_dict(load_arrays(path / WEIGHTS_NAME))
    return model.eval()
