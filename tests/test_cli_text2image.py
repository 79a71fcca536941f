"""`tinydiff train --dataset shapes-captions --text-encoder DIR --latent VAE_DIR` and `tinydiff
sample --prompt`: a tiny run end to end, the grid and arrays it samples, and the one-line errors
of flags that do not fit the model (tiny random text encoder: tiny_clip_dir in conftest)."""

import numpy as np
import pytest

from tinydiff.cli.main import main
from tinydiff.pipelines.text_to_image import TextToImagePipeline
from tinydiff.pretrained import HERE

VAE = HERE / "shapes_latent" / "vae"


def train_argv(clip, out, steps=2):
    return ["train", "--dataset", "shapes-captions", "--text-encoder", str(clip), "--latent", str(VAE),
            "--latent-images", "16", "--batch-size", "8", "--steps", str(steps), "--channels", "8,16",
            "--attention", "1,0", "--warmup-steps", "1", "--checkpoint-every", "2", "--sample-every", "0",
            "--processes", "1", "--out", str(out)]


@pytest.fixture(scope="module")
def text_run(tiny_clip_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("t2i") / "run"
    assert main(train_argv(tiny_clip_dir, out)) == 0
    return out


def test_train_writes_a_text_to_image_pipeline_that_sample_draws(text_run, tmp_path):
    pipe = TextToImagePipeline.from_pretrained(text_run / "final")
    assert type(pipe.unet).__name__ == "UNet2DConditionModel" and pipe.unet.config["cross_attention_dim"] == 16
    assert (text_run / "samples" / "step-0000002.png").is_file()
    argv = ["sample", "--model", str(text_run / "final"), "--prompt", "a large red circle at the top left",
            "--guidance-scale", "2", "--num", "3", "--steps", "2", "--npz", str(tmp_path / "s.npz"),
            "--out", str(tmp_path / "s.png")]
    assert main(argv) == 0
    assert (tmp_path / "s.png").is_file()
    saved = np.load(tmp_path / "s.npz")
    expected = pipe("a large red circle at the top left", num_images_per_prompt=3, guidance_scale=2.0,
                    num_inference_steps=2, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(saved["samples"], expected)
    assert str(saved["prompt"]) == "a large red circle at the top left"
    assert main(argv[:-4] + ["--negative-prompt", "a blue square", "--npz", str(tmp_path / "n.npz"),
                             "--out", str(tmp_path / "n.png")]) == 0
    assert np.abs(np.load(tmp_path / "n.npz")["samples"] - expected).max() > 1e-4


def test_resumed_cli_run_ends_with_the_same_model(tiny_clip_dir, text_run, tmp_path):
    import shutil

    argv = train_argv(tiny_clip_dir, tmp_path / "chunks") + ["--checkpoint-every", "1"]
    assert main(argv) == 0
    # as if interrupted after step 1: its checkpoint is the latest, no final/ yet
    (tmp_path / "chunks" / "checkpoints" / "latest").write_text("step-0000001\n")
    shutil.rmtree(tmp_path / "chunks" / "checkpoints" / "step-0000002")
    shutil.rmtree(tmp_path / "chunks" / "final")
    assert main(argv + ["--resume"]) == 0
    ours = TextToImagePipeline.from_pretrained(tmp_path / "chunks" / "final").unet.state_dict()
    theirs = TextToImagePipeline.from_pretrained(text_run / "final").unet.state_dict()
    for name in theirs:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def test_sample_errors_are_one_line(text_run, tmp_path):
    final, out = str(text_run / "final"), str(tmp_path / "x.png")
    with pytest.raises(SystemExit, match="unknown word 'purple'.*nearest known words"):
        main(["sample", "--model", final, "--prompt", "a purple circle", "--out", out])
    with pytest.raises(SystemExit, match="--label is for class-conditional models"):
        main(["sample", "--model", final, "--label", "1", "--out", out])
    with pytest.raises(SystemExit, match='text-to-image model; give --prompt'):
        main(["sample", "--model", final, "--out", out])
    with pytest.raises(SystemExit, match="--prompt needs a text-to-image model"):
        main(["sample", "--model", str(HERE / "glyphs"), "--prompt", "a red circle", "--out", out])
    assert not (tmp_path / "x.png").exists()


def test_train_refuses_text_flags_that_do_not_fit(tiny_clip_dir, tmp_path):
    argv = train_argv(tiny_clip_dir, tmp_path / "a")
    without_encoder = argv[:3] + argv[5:]
    with pytest.raises(SystemExit, match="give --text-encoder DIR"):
        main(without_encoder)
    with pytest.raises(SystemExit, match="--text-encoder: needs captions"):
        main(["train", "--dataset", "shapes"] + argv[3:])
    without_latent = argv[:5] + argv[7:]
    with pytest.raises(SystemExit, match="give --latent VAE_DIR"):
        main(without_latent)
    with pytest.raises(SystemExit, match="--text-encoder: .*not a text encoder folder"):
        main(argv[:4] + [str(tmp_path)] + argv[5:])


def test_sample_prompt_without_model_draws_the_shipped_text_to_image_pipeline(text_run, tmp_path, monkeypatch):
    # the shipped folder stands in for a tiny one, so that this tests the default, not the weights
    monkeypatch.setattr("tinydiff.pretrained.text2image_dir", lambda: text_run / "final")
    prompt = "a small blue square"
    assert main(["sample", "--prompt", prompt, "--num", "2", "--steps", "2", "--npz", str(tmp_path / "d.npz"),
                 "--out", str(tmp_path / "d.png")]) == 0
    pipe = TextToImagePipeline.from_pretrained(text_run / "final")
    expected = pipe(prompt, num_images_per_prompt=2, num_inference_steps=2, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(np.load(tmp_path / "d.npz")["samples"], expected)
    # without the shipped folder: one line naming it; --model still works without it
    monkeypatch.setattr("tinydiff.pretrained.text2image_dir", lambda: tmp_path / "nowhere")
    with pytest.raises(SystemExit, match="no --model samples the shipped text-to-image pipeline.*nowhere") as err:
        main(["sample", "--prompt", prompt, "--out", str(tmp_path / "e.png")])
    assert "\n" not in str(err.value.code)
    assert main(["sample", "--model", str(text_run / "final"), "--prompt", prompt, "--num", "2", "--steps", "2",
                 "--npz", str(tmp_path / "m.npz"), "--out", str(tmp_path / "m.png")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "m.npz")["samples"], expected)


def test_resume_refuses_a_text_encoder_retrained_in_place(tiny_clip_dir, tmp_path):
    import shutil

    from tinydiff.models.clip_text import CLIPTextModelWithProjection

    clip = tmp_path / "clip"
    shutil.copytree(tiny_clip_dir, clip)
    assert main(train_argv(clip, tmp_path / "run", steps=1) + ["--checkpoint-every", "1"]) == 0
    resume = train_argv(clip, tmp_path / "run", steps=2) + ["--checkpoint-every", "1", "--resume"]
    # the same path, the same architecture, other weights: as if train-clip had run again into it
    encoder = CLIPTextModelWithProjection.from_pretrained(clip / "text_encoder")
    encoder.load_state_dict({k: v + 0.01 for k, v in encoder.state_dict().items()})
    encoder.save_pretrained(clip / "text_encoder")
    with pytest.raises(SystemExit, match="--text-encoder: its text_encoder/model.safetensors is not the one the run "
                                         "was trained with.*retrained in place") as err:
        main(resume)
    assert "\n" not in str(err.value.code)
    assert not (tmp_path / "run" / "checkpoints" / "step-0000002").exists()
    # sampling the run's checkpoint is refused too: its UNet never saw these hidden states
    with pytest.raises(SystemExit, match="is not the one the run of .*step-0000001 was trained with"):
        main(["sample", "--model", str(tmp_path / "run" / "checkpoints" / "step-0000001"), "--prompt", "a red circle",
              "--out", str(tmp_path / "c.png")])
    # the run's own weights back in place: the run resumes
    shutil.copytree(tiny_clip_dir / "text_encoder", clip / "text_encoder", dirs_exist_ok=True)
    assert main(resume) == 0
    assert (tmp_path / "run" / "checkpoints" / "step-0000002").is_dir()


def test_sample_draws_a_text_runs_checkpoint_as_its_final_pipeline(text_run, tmp_path):
    # during a run: the checkpoint's EMA UNet, the run's VAE and the text encoder it names
    checkpoint = text_run / "checkpoints" / "step-0000002"
    common = ["--prompt", "a small green triangle", "--num", "2", "--steps", "2"]
    for name, folder in (("c", checkpoint), ("f", text_run / "final")):
        assert main(["sample", "--model", str(folder), *common, "--npz", str(tmp_path / f"{name}.npz"),
                     "--out", str(tmp_path / f"{name}.png")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "c.npz")["samples"], np.load(tmp_path / "f.npz")["samples"])
