"""TextToVideoPipeline: AnimateDiff's sampling recipe (Guo et al. 2023) on a text-to-image model
inflated to video, in latent space (Rombach et al. 2022). Space and time are factorised (Ho et al.
2022, "Video Diffusion Models", sec. 3): the image layers see each frame, the motion modules
the frames at each pixel, and the clip is denoised as one sample.

    prompt  --tokenizer-->  ids (B, N)  --text encoder-->  last hidden state (B, N, D)
    z_T ~ N(0, I) (B, C, F, h, w)          independent noise for every frame
    for t in the scheduler's timesteps:    (tinydiff.pipelines.sample, guidance as for images)
        eps = UNetMotionModel(z_t, t, states)   the 2-D layers on each frame, the motion
                                                modules across the F frames at each position
        z_{t-1} = scheduler.step(eps, t, z_t)
    clip = vae.decode(z_0) frame by frame  ->  (B, F, 3, H, W) in [-1, 1]

The folder (save_pretrained) is AnimateDiff's in diffusers: unet/ the image UNet
(UNet2DConditionModel), motion_adapter/ the motion modules alone (MotionAdapter), vae/,
text_encoder/, tokenizer/, scheduler/, and model_index.json with the recommended guidance scale
and the clip length the motion modules were trained on.

frame_by_frame is the baseline without temporal layers: the text-to-image pipeline draws each
frame of a clip from its own seed, so nothing ties frame f to frame f + 1 (it flickers).
"""

from pathlib import Path

import numpy as np

import tinydiff
from tinydiff.models.motion import MotionAdapter, UNetMotionModel, is_motion, unet2d_config
from tinydiff.models.unet_condition import UNet2DConditionModel
from tinydiff.pipelines import checkpoint as ckpt
from tinydiff.pipelines.guidance import GUIDANCE_SCALE_KEY, check_guidance
from tinydiff.pipelines.latent import decode_latents, load_vae_folder
from tinydiff.pipelines.sampling import sample
from tinydiff.pipelines.text_encoding import encode_prompts, load_text_encoder
from tinydiff.pipelines.text_pipeline_parts import (check_text_parts, is_pipeline_folder, read_scheduler,
                                                    read_text_index, scheduler_kind, write_text_parts)
from tinydiff.pipelines.text_to_image import as_prompt_list

CLASS_NAME = "TextToVideoPipeline"
NUM_FRAMES_KEY = "_tinydiff_num_frames"  # the clip length the motion modules were trained on
DEFAULT_GUIDANCE_SCALE = 4.0


def check_count(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def unet2d_of(unet):
    """The image UNet (UNet2DConditionModel, a copy) whose layers a UNetMotionModel runs per
    frame: its config inflated back and every parameter that is not a motion module's."""
    image = UNet2DConditionModel(**unet2d_config(unet.config))
    image.load_state_dict({k: v for k, v in unet.state_dict().items() if not is_motion(k)})
    return image


def decode_clips(vae, z):
    """Clips (B, F, 3, H, W) from video latents z (B, C, F, h, w), decoded frame by frame."""
    B, C, F, h, w = z.shape
    frames = np.ascontiguousarray(z.transpose(0, 2, 1, 3, 4)).reshape(B * F, C, h, w)  # (B F, C, h, w)
    images = decode_latents(vae, frames)  # (B F, 3, H, W)
    return images.reshape((B, F) + images.shape[1:])


class TextToVideoPipeline:
    """Prompts to clips with an inflated text-to-image UNet.

    Parameters
    ----------
    unet : UNetMotionModel
    vae : AutoencoderKL (decodes each frame's latents)
    text_encoder : CLIPTextModel or CLIPTextModelWithProjection (knows the motion words)
    tokenizer : WordTokenizer
    scheduler : DDPMScheduler, DDIMScheduler or DPMSolverMultistepScheduler
    guidance_scale : float, the recommended scale
    num_frames : int, the clip length the motion modules were trained on (__call__'s default
        and its limit)
    """

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler, guidance_scale=DEFAULT_GUIDANCE_SCALE,
                 num_frames=8):
        if not isinstance(unet, UNetMotionModel):
            raise TypeError(f"unet: expected a UNetMotionModel, got {type(unet).__name__}")
        check_text_parts(unet, vae, text_encoder)
        self.num_frames = check_count(num_frames, "num_frames", 2)
        if self.num_frames > unet.config["motion_max_seq_length"]:
            raise ValueError(f"num_frames: {num_frames} exceeds the motion modules' motion_max_seq_length="
                             f"{unet.config['motion_max_seq_length']}")
        self.unet, self.vae, self.text_encoder, self.tokenizer, self.scheduler = \
            unet, vae, text_encoder, tokenizer, scheduler
        self.guidance_scale, _ = check_guidance(guidance_scale, 0.0)
        self.text_encoder.eval()

    def encode(self, prompts):
        """The text encoder's last hidden state (B, N, D) float32 for a list of prompts."""
        return encode_prompts(self.text_encoder, self.tokenizer, prompts)

    def check_frames(self, num_frames):
        """2 <= num_frames <= the trained length: the motion modules' frame-position embeddings
        beyond it were never trained, so a longer clip is refused rather than guessed."""
        num_frames = self.num_frames if num_frames is None else check_count(num_frames, "num_frames", 2)
        if num_frames > self.num_frames:
            raise ValueError(f"num_frames: {num_frames} frames, but the motion modules were trained on clips of "
                             f"{self.num_frames}; their frame positions beyond {self.num_frames - 1} were never "
                             f"trained (ask for at most {self.num_frames})")
        return num_frames

    def __call__(self, prompt, num_frames=None, negative_prompt="", num_videos_per_prompt=1, guidance_scale=None,
                 num_inference_steps=25, rng=None, latents=None, eta=0.0, progress=False, return_latents=False,
                 record=False):
        """Clips for each prompt.

        Parameters
        ----------
        prompt : str or list of str, length P
        num_frames : int, optional
            F, 2 .. the trained length (the default).
        negative_prompt : str or list of str (one per prompt); "" is the null condition
        num_videos_per_prompt : int
            Clips per prompt, consecutive (B = P * num_videos_per_prompt).
        guidance_scale : float >= 0, optional
            uncond + s (cond - uncond) (Ho & Salimans 2022, eq. 6); default self.guidance_scale.
        num_inference_steps, eta : as tinydiff.pipelines.sample
        rng : numpy.random.Generator
            Draws z_T (B, C, F, h, w) (unless latents are given) and stochastic steps' noise.
        latents : ndarray (B, C, F, h, w), optional
        progress : bool
        return_latents : bool
            Also return z_0 (B, C, F, h, w).
        record : bool
            Also return the trajectory [(t, z_t, predicted z_0)] (for a denoising animation).

        Returns
        -------
        clips : ndarray (B, F, 3, H, W) float32 in [-1, 1]; then z_0 if return_latents, then the
            trajectory if record
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
        count = check_count(num_videos_per_prompt, "num_videos_per_prompt")
        F = self.check_frames(num_frames)
        prompts = as_prompt_list(prompt, "prompt")
        negatives = as_prompt_list(negative_prompt, "negative_prompt", len(prompts))
        scale, _ = check_guidance(self.guidance_scale if guidance_scale is None else guidance_scale, 0.0)
        cond = np.repeat(self.encode(prompts), count, axis=0)  # (P, N, D) -> (B, N, D)
        uncond = None if scale == 1.0 else np.repeat(self.encode(negatives), count, axis=0)
        c, s = self.unet.config["in_channels"], self.unet.config["sample_size"]
        result = sample(self.unet, self.scheduler, (len(cond), c, F, s, s), rng, num_inference_steps, eta=eta,
                        progress=progress, guidance_scale=scale, encoder_hidden_states=cond,
                        negative_encoder_hidden_states=uncond, latents=latents, record=record)
        z, trajectory = result if record else (result, None)
        clips = np.clip(decode_clips(self.vae, z), -1.0, 1.0).astype(np.float32, copy=False)
        out = (clips,) + ((z,) if return_latents else ()) + ((trajectory,) if record else ())
        return out if len(out) > 1 else clips

    # ---- the folder ------------------------------------------------------------------------
    def save_pretrained(self, path, dtype=np.float32, guidance_scale=None):
        """Write the folder atomically: model_index.json (guidance scale, trained clip length),
        unet/ (the image UNet), motion_adapter/ (diffusers' MotionAdapter folder), vae/,
        text_encoder/, tokenizer/, scheduler/. dtype=np.float16 halves the weights."""
        scale, _ = check_guidance(self.guidance_scale if guidance_scale is None else guidance_scale, 0.0)
        scheduler_kind(self.scheduler)  # one a folder can hold, checked before anything is written

        def write(tmp):
            parts = write_text_parts(tmp, {"unet": unet2d_of(self.unet), "vae": self.vae}, self.text_encoder,
                                     self.tokenizer, self.scheduler, dtype)
            self.unet.save_motion_modules(tmp / "motion_adapter", dtype)
            ckpt.write_json(tmp / "model_index.json", {
                "_class_name": CLASS_NAME, "_tinydiff_version": tinydiff.__version__, **parts,
                "motion_adapter": ["diffusers", "MotionAdapter"], GUIDANCE_SCALE_KEY: scale,
                NUM_FRAMES_KEY: self.num_frames})

        ckpt.write_folder_atomically(path, write)

    @classmethod
    def from_pretrained(cls, path):
        """The pipeline a folder written by save_pretrained holds (float32): the image UNet
        inflated with the motion adapter (UNetMotionModel.from_unet2d). FileNotFoundError for a
        missing part, ValueError for a wrong one, each naming the file."""
        path = Path(path)
        index = read_text_index(path, CLASS_NAME, "text-to-video",
                                ("motion_adapter", "vae", "text_encoder", "tokenizer", "scheduler"))
        image_unet = ckpt.load_model(path / "unet")
        if not isinstance(image_unet, UNet2DConditionModel):
            raise ValueError(f"{path / 'unet'}: holds a {type(image_unet).__name__}, expected a UNet2DConditionModel")
        adapter = MotionAdapter.from_pretrained(path / "motion_adapter")
        try:
            unet = UNetMotionModel.from_unet2d(image_unet, adapter)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path / 'motion_adapter'}: {err}") from None
        vae = load_vae_folder(path / "vae")
        text_encoder, tokenizer = load_text_encoder(path)
        scheduler = read_scheduler(path)
        try:
            return cls(unet, vae, text_encoder, tokenizer, scheduler,
                       guidance_scale=index.get(GUIDANCE_SCALE_KEY, DEFAULT_GUIDANCE_SCALE),
                       num_frames=index.get(NUM_FRAMES_KEY, 8))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from None


def is_text_to_video_folder(path):
    """Whether `path` holds a model_index.json naming TextToVideoPipeline."""
    return is_pipeline_folder(path, CLASS_NAME)


def frame_by_frame(pipeline, prompts, num_frames, seed, guidance_scale=None, num_inference_steps=25, progress=False):
    """The baseline without temporal layers: a TextToImagePipeline draws frame f of clip b from
    its own seed np.random.default_rng((seed, b, f)), so consecutive frames share nothing.

    Parameters
    ----------
    pipeline : TextToImagePipeline
    prompts : list of str, length B (words it does not know, such as motion words, must be
        left out first: tinydiff.data.moving_shapes.still_caption does that for clip captions)
    num_frames : int, F

    Returns
    -------
    clips : ndarray (B, F, 3, H, W) float32 in [-1, 1]
    """
    prompts = as_prompt_list(prompts, "prompts")
    F = check_count(num_frames, "num_frames", 1)
    c, s = pipeline.unet.config["in_channels"], pipeline.unet.config["sample_size"]
    latents = np.stack([np.random.default_rng((seed, b, f)).standard_normal((c, s, s))
                        for b in range(len(prompts)) for f in range(F)])  # (B F, c, s, s)
    images = pipeline([p for p in prompts for _ in range(F)], guidance_scale=guidance_scale,
                      num_inference_steps=num_inference_steps, rng=np.random.default_rng(seed), latents=latents,
                      progress=progress)
    return images.reshape((len(prompts), F) + images.shape[1:])
