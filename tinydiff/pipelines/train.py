"""The training loop of a diffusion model (Ho et al. 2020, Algorithm 1), by hand:

    repeat:  x_0 ~ data,  t ~ U{0..T-1},  eps ~ N(0, I)
             x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps        (eq. 4)
             loss = w_t || target - model(x_t, t) ||^2                        (eq. 14, simple loss)
             model.backward(d loss / d prediction); clip; AdamW; EMA

target is eps, x_0 or v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0 (Salimans & Ho 2022),
as the scheduler's prediction_type says; w_t = 1, or min-SNR-gamma weighting (Hang et al. 2023).

Randomness is keyed by (seed, step): the batch, the timesteps and the noise of step s are the
same in a run that was interrupted and resumed as in one that was not, so resuming from a
checkpoint ends with identical weights.
"""

import errno
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tinydiff.nn import Dropout, mse_loss
from tinydiff.optim import EMA, AdamW, clip_grad_norm_, cosine_with_warmup
from tinydiff.pipelines import checkpoint as ckpt
from tinydiff.pipelines import run_settings
from tinydiff.pipelines.guidance import drop_condition, real_classes
from tinydiff.pipelines.pipeline_folder import save_pipeline
from tinydiff.pipelines.sampling import sample, scheduler_config, scheduler_from_config
from tinydiff.pipelines.train_config import TrainConfig  # noqa: F401 (its home for a long time)
from tinydiff.viz.tiles import save_labelled_grid


class TrainingDiverged(RuntimeError):
    """The loss, the gradients or the weights became NaN/inf; nothing non-finite was saved and
    the last good checkpoint is untouched."""


class SaveFailed(RuntimeError):
    """A checkpoint, sample grid or final model could not be written (a full disk, a lost
    permission); the last good checkpoint is untouched."""


def loss_weights(snr, prediction_type, gamma):
    """Min-SNR-gamma weights (Hang et al. 2023, sec. 3.4), per sample.

    The loss on x_0 weighted by min(SNR, gamma) equals, in the other parameterisations,
    min(SNR, gamma) / SNR on epsilon and min(SNR, gamma) / (SNR + 1) on v."""
    if gamma == 0:
        return None
    clipped = np.minimum(snr, gamma)
    if prediction_type == "epsilon":
        return clipped / snr
    if prediction_type == "v_prediction":
        return clipped / (snr + 1.0)
    return clipped


def training_target(scheduler, x0, noise, t):
    """The target of the simple loss (Ho et al. 2020, eq. 14): eps, x_0 or v (Salimans & Ho 2022, sec. 4)."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "sample":
        return x0
    return scheduler.get_velocity(x0, noise, t)


class Trainer:
    """Train `model` to denoise batches from `data(step)` under `scheduler`'s noise schedule.

    Parameters
    ----------
    model : Module
        Called as model(x_t, t) or model(x_t, t, labels); has a `config` dict. For a text model
        (config cross_attention_dim) labels are encoder_hidden_states (B, N, D).
    scheduler : DDPMScheduler (or any scheduler: its betas and prediction_type are used)
        None only for a subclass that trains without a noise schedule (VAETrainer).
    data : callable
        data(step) -> (x0 float32 array, labels or None); see data_sources (text:
        text_conditioning.CaptionedLatents, which applies config.cond_drop_prob itself).
    config : TrainConfig
    out_dir : path
        Gets checkpoints/, samples/ and, at the end, final/ (a model + scheduler folder).
    settings : dict, optional
        What the caller decided (the CLI: every flag), JSON, stored in each checkpoint's
        trainer_state.json as `run_settings` for the caller to compare on resume
        (tinydiff.pipelines.run_settings). The Trainer itself compares on resume its config,
        the model's config and the scheduler's config.
    parallel : optional
        How run() spreads each batch over processes: None runs the model in this process; a
        caller that wants several hands in tinydiff.runtime.parallel.ParallelRunner, whose
        `running(model)` block yields the runner to call in the model's place. Not a setting of
        the run: a run may resume with another process count.
    """

    def __init__(self, model, scheduler, data, config, out_dir, progress=True, settings=None, parallel=None):
        config.validate()
        self.settings = dict(settings or {})
        self.model, self.scheduler, self.data, self.config = model, scheduler, data, config
        self.parallel = parallel
        self.runner = model  # runs the model on a batch: the model, or during run() what parallel.running() yields
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.params = model.parameters()
        self.optimizer = AdamW(self.params, lr=config.lr, weight_decay=config.weight_decay)
        self.ema = EMA(self.params, decay=config.ema_decay)
        self.step = 0
        self.log = []  # (step, mean loss over the last log_every steps)
        if scheduler is None:
            return
        self.snr = scheduler.alphas_cumprod / (1.0 - scheduler.alphas_cumprod)
        self.null_label = model.config.get("class_embed_null_index")
        # a text model's null condition is the empty prompt, which only the data source can
        # encode: it drops captions itself (tinydiff.pipelines.text_conditioning.CaptionedLatents)
        self.drops_labels = model.config.get("cross_attention_dim") is None
        if config.cond_drop_prob > 0 and self.null_label is None and self.drops_labels:
            raise ValueError(f"cond_drop_prob: {config.cond_drop_prob} needs a class-conditional model with a null "
                             f"class (config class_embed_null_index), got a model without one")

    # ---- one step ----------------------------------------------------------------------
    def batch(self, step):
        """Everything step `step` trains on: (x_t, t, labels, target, per-sample weight)."""
        cfg, sched = self.config, self.scheduler
        x0, labels = self.data(step)
        if self.drops_labels:
            labels = drop_condition(labels, cfg.cond_drop_prob, self.null_label, (cfg.seed, 19, step))
        rng = np.random.default_rng((cfg.seed, 3, step))
        t = rng.integers(0, sched.config.num_train_timesteps, size=len(x0))
        noise = rng.standard_normal(x0.shape).astype(np.float32)
        x_t = sched.add_noise(x0, noise, t).astype(np.float32)
        target = training_target(sched, x0, noise, t).astype(np.float32)
        weight = loss_weights(self.snr[t], sched.config.prediction_type, cfg.min_snr_gamma)
        return x_t, t, labels, target, weight

    def predict(self, x_t, t, labels):
        return self.runner(x_t, t) if labels is None else self.runner(x_t, t, labels)

    def train_step(self, step):
        cfg = self.config
        x_t, t, labels, target, weight = self.batch(step)
        self.model.train()
        loss, dpred = mse_loss(self.predict(x_t, t, labels), target, weight)  # raises if not finite
        self.model.zero_grad()
        self.runner.backward(dpred)
        grad_norm = clip_grad_norm_(self.params, cfg.grad_clip)  # raises if not finite
        self.optimizer.lr = cosine_with_warmup(step, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.min_lr)
        self.optimizer.step()
        self.ema.update()
        return loss, grad_norm

    def evaluate(self, keys):
        """Mean loss, in eval mode and without updating anything, on the batches of the
        given step keys (use keys beyond config.steps for batches training never sees)."""
        self.model.eval()
        losses = [mse_loss(self.predict(x_t, t, labels), target, weight)[0]
                  for x_t, t, labels, target, weight in map(self.batch, keys)]
        return float(np.mean(losses))

    # ---- the loop ------------------------------------------------------------------------
    def run(self, resume=False, until=None):
        """Train to config.steps (or stop after step `until`, for training in chunks).
        resume=True continues from the latest checkpoint in out_dir. Returns the loss log."""
        cfg = self.config
        if resume:
            self.load_latest()
        stop = cfg.steps if until is None else min(until, cfg.steps)
        if self.parallel is not None and self.step < stop:
            with self.parallel.running(self.model) as runner:
                self.runner = runner
                try:
                    return self._loop(stop)
                finally:
                    self.runner = self.model
        return self._loop(stop)

    def _loop(self, stop):
        bar = tqdm(total=stop, initial=self.step, desc="training", unit="step", disable=not self.progress,
                   dynamic_ncols=True)
        try:
            return self._steps(stop, bar)
        finally:
            bar.close()  # also on Ctrl-C, before the caller's one-line message

    def _steps(self, stop, bar):
        cfg = self.config
        recent = []
        while self.step < stop:
            try:
                loss, grad_norm = self.train_step(self.step)
            except FloatingPointError as err:
                raise TrainingDiverged(
                    f"training stopped at step {self.step}: {err}. Nothing was saved for this step; "
                    f"{self.where_to_resume()}. A lower learning rate (now {cfg.lr}) or stronger clipping "
                    f"usually helps.") from None
            self.step += 1
            recent.append(loss)
            if self.step % cfg.log_every == 0 or self.step == stop:
                self.log.append((self.step, float(np.mean(recent))))
                recent = []
            bar.set_postfix(loss=f"{loss:.4f}", grad=f"{grad_norm:.2f}", lr=f"{self.optimizer.lr:.2e}")
            bar.update(1)
            if self.step % cfg.checkpoint_every == 0 or self.step == stop:
                self.saving(f"step {self.step}", self.save_checkpoint)
            if cfg.sample_every and self.step % cfg.sample_every == 0:
                self.saving(f"the samples of step {self.step}", self.save_samples)
        if self.step == cfg.steps:
            self.saving("the final model", self.save_final)
            self.saving(f"the samples of step {self.step}", self.save_samples)
        return self.log

    def where_to_resume(self):
        """'the last good checkpoint is step M (DIR)...', for messages."""
        latest = self.latest_checkpoint()
        if latest is None:
            return "no checkpoint had been written yet"
        return f"the last good checkpoint is step {int(latest.name.split('-')[-1])} ({latest})"

    def saving(self, what, save):
        """save(); an OSError (a full disk, a lost permission) becomes one SaveFailed line that
        says what was lost and where the run can continue from."""
        try:
            return save()
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                cause = "no space left on device" if err.errno == errno.ENOSPC else "disk quota exceeded"
                fix = "free space"
            else:
                cause = f"{err.strerror or err}{f': {err.filename}' if err.filename else ''}"
                fix = "fix that"
            raise SaveFailed(f"{cause} while saving {what}; {self.where_to_resume()}; "
                             f"{fix} and continue with --resume") from None

    def check_finite_weights(self):
        """Refuse to save weights (or EMA weights) that hold NaN/inf: a checkpoint or final/
        never holds them."""
        named = list(self.model.named_parameters())
        arrays = [(name, p.data) for name, p in named] + \
            [(f"EMA of {name}", shadow) for (name, _), shadow in zip(named, self.ema.shadow)]
        for name, values in arrays:
            if not np.all(np.isfinite(values)):
                raise TrainingDiverged(
                    f"training stopped at step {self.step}: the weights {name} hold NaN or inf, so they were "
                    f"not saved; {self.where_to_resume()}. A lower learning rate (now {self.config.lr}) "
                    f"usually helps.")

    # ---- outputs -------------------------------------------------------------------------
    def checkpoint_dir(self):
        return self.out_dir / "checkpoints"

    def latest_checkpoint(self):
        pointer = self.checkpoint_dir() / "latest"
        if not pointer.is_file():
            return None
        path = self.checkpoint_dir() / pointer.read_text().strip()
        ckpt.recover_folder(path)
        return path

    def trainer_state(self):
        dropout_rngs = {name: m.rng.bit_generator.state for name, m in self.model.named_modules()
                        if isinstance(m, Dropout)}
        return {"step": self.step, "config": asdict(self.config), "log": self.log,
                "dropout_rng_states": dropout_rngs, "run_settings": self.settings}

    def save_checkpoint(self):
        """checkpoints/step-NNNNNNN/ written atomically, then the `latest` pointer swapped
        atomically (os.replace); older checkpoints beyond keep_checkpoints are removed."""
        name = f"step-{self.step:07d}"
        self.check_finite_weights()
        opt_state, ema_state = self.optimizer.state_dict(), self.ema.state_dict()

        def write(tmp):
            ckpt.write_json(tmp / ckpt.CONFIG_NAME, ckpt.model_config(self.model))
            ckpt.save_arrays(tmp / ckpt.WEIGHTS_NAME, self.model.state_dict())
            ckpt.save_arrays(tmp / "ema.safetensors", {k: v for k, v in ema_state.items() if isinstance(v, np.ndarray)})
            ckpt.save_arrays(tmp / "optimizer.safetensors", {k: v for k, v in opt_state.items() if isinstance(v, np.ndarray)})
            numbers = {"optimizer": {k: v for k, v in opt_state.items() if not isinstance(v, np.ndarray)},
                       "ema": {k: v for k, v in ema_state.items() if not isinstance(v, np.ndarray)}}
            ckpt.write_json(tmp / "optimizer_state.json", numbers)
            if self.scheduler is not None:  # a VAE trainer has none
                ckpt.write_json(tmp / "scheduler_config.json", scheduler_config(self.scheduler))
            ckpt.write_json(tmp / "trainer_state.json", self.trainer_state())

        ckpt.write_folder_atomically(self.checkpoint_dir() / name, write)
        pointer_tmp = self.checkpoint_dir() / "latest.tmp"
        pointer_tmp.write_text(name + "\n")
        os.replace(pointer_tmp, self.checkpoint_dir() / "latest")
        kept = sorted(p for p in self.checkpoint_dir().glob("step-*") if p.is_dir())
        for old in kept[: -self.config.keep_checkpoints]:
            shutil.rmtree(old)

    def load_latest(self):
        path = self.latest_checkpoint()
        if path is None:
            raise FileNotFoundError(f"--resume: no checkpoint in {self.checkpoint_dir()} (no 'latest' pointer)")
        state = ckpt.read_json(path / "trainer_state.json")
        run_settings.refuse_changes(self.resume_problems(path, state), self.out_dir)
        self.model.load_state_dict(ckpt.load_arrays(path / ckpt.WEIGHTS_NAME))
        numbers = ckpt.read_json(path / "optimizer_state.json")
        self.optimizer.load_state_dict({**numbers["optimizer"], **ckpt.load_arrays(path / "optimizer.safetensors")})
        self.ema.load_state_dict({**numbers["ema"], **ckpt.load_arrays(path / "ema.safetensors")})
        for name, module in self.model.named_modules():
            if isinstance(module, Dropout):
                module.rng.bit_generator.state = state["dropout_rng_states"][name]
        self.step = state["step"]
        self.log = [tuple(entry) for entry in state["log"]]

    def resume_problems(self, path, state):
        """How this Trainer differs from checkpoint `path` (trainer_state `state`): the
        training settings (except how the run is watched; steps may grow: it is extended), the
        model's config and the scheduler's config, which checkpoints have always held."""
        saved, now = {"cond_drop_prob": 0.0, **state["config"]}, asdict(self.config)  # older runs: no dropout
        problems = [f"{key}: the run used {old}, now {new}" for key, old, new in
                    run_settings.differences(saved, now, run_settings.IGNORED_CONFIG | {"steps"})]
        problems.append(run_settings.steps_problem("steps", saved["steps"], now["steps"]))
        problems += run_settings.model_problems(ckpt.read_json(path / ckpt.CONFIG_NAME),
                                                ckpt.model_config(self.model), "the model's")
        if self.scheduler is not None and (path / "scheduler_config.json").is_file():
            problems += run_settings.model_problems(ckpt.read_json(path / "scheduler_config.json"),
                                                    scheduler_config(self.scheduler), "the scheduler's")
        return [p for p in problems if p]

    def save_final(self):
        """final/: the EMA weights as a model folder plus the scheduler, diffusers' layout."""
        with self.ema.swap_in():
            save_pipeline(self.out_dir / "final", self.model, self.scheduler)

    def save_samples(self):
        """A grid of samples from the EMA weights (DDIM, config.sample_steps steps)."""
        cfg = self.config
        if self.model.config.get("sample_size") is None:
            return None  # 2-D models: lessons plot their points instead
        c, s = self.model.config["in_channels"], self.model.config["sample_size"]
        labels = self.sample_labels()
        ddim = scheduler_from_config("ddim", scheduler_config(self.scheduler))
        with self.ema.swap_in():
            x = sample(self.model, ddim, (cfg.num_samples, c, s, s), np.random.default_rng(cfg.seed),
                       cfg.sample_steps, class_labels=labels)
        return self.save_grid(x, labels)

    def sample_labels(self):
        """The class of each sample of a grid (cycling through the classes), or None."""
        classes = real_classes(self.model.config)
        return None if not classes else np.arange(self.config.num_samples) % classes

    def save_grid(self, x, labels, title=None):
        """samples/step-N.png: x zoomed to be seen, titled with the step; with class labels,
        one column per class (when they fit in 16 columns), each headed by its class."""
        folder = self.out_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        ncols = col_labels = None
        title = title or f"step {self.step}"
        classes = real_classes(self.model.config)
        if labels is not None and classes <= 16:
            ncols, col_labels = classes, [str(c) for c in range(classes)]
            title += "; one column per class"
        return save_labelled_grid(folder / f"step-{self.step:07d}.png", x, title, col_labels, ncols)
