"""`tinydiff train --dataset moving-shapes` and `tinydiff sample` of a text-to-video folder: a tiny
run end to end; the GIF grid, the PNG rows, the (N, F, C, H, W) arrays and the denoising GIF;
and one-line errors for a clip length beyond the trained one, outputs that exist, and flags
that do not fit (tiny random pipeline: tiny_t2i_dir in conftest)."""

import numpy as np
import pytest
from PIL import Image

from tinydiff.cli.main import main
from tinydiff.pipelines.text_to_video import TextToVideoPipeline


def train_argv(t2i, out, steps=2):
    return ["train", "--dataset", "moving-shapes", "--text-to-image", str(t2i), "--frames", "4", "--clips", "8",
            "--batch-size", "8", "--steps", str(steps), "--warmup-steps", "1", "--checkpoint-every", "2",
            "--sample-every", "0", "--out", str(out)]


@pytest.fixture(scope="module")
def video_run(tiny_t2i_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("video") / "run"
    assert main(train_argv(tiny_t2i_dir, out)) == 0
    return out


def test_train_writes_a_pipeline_and_sample_draws_gif_png_and_arrays(video_run, tmp_path):
    final = video_run / "final"
    pipe = TextToVideoPipeline.from_pretrained(final)
    assert pipe.num_frames == 4 and "moving" in pipe.tokenizer.vocab
    # the default recipe's motion modules read the caption (MotionAdapter's motion_cross_attention_dim)
    assert pipe.unet.config["motion_cross_attention_dim"] == pipe.unet.config["cross_attention_dim"]
    argv = ["sample", "--model", str(final), "--prompt", "a red circle moving right", "--num", "3", "--steps", "2"]
    assert main(argv + ["--out", str(tmp_path / "c.gif"), "--npz", str(tmp_path / "c.npz"),
                        "--gif", str(tmp_path / "d.gif")]) == 0
    saved = np.load(tmp_path / "c.npz")
    expected = pipe("a red circle moving right", num_videos_per_prompt=3, num_inference_steps=2,
                    rng=np.random.default_rng(0))
    assert saved["samples"].shape == (3, 4, 3, 32, 32)
    np.testing.assert_array_equal(saved["samples"], expected)
    with Image.open(tmp_path / "c.gif") as gif:
        assert gif.n_frames == 4  # one GIF frame per clip frame
    with Image.open(tmp_path / "d.gif") as gif:
        assert gif.n_frames == 2  # one per sampling step
    heights = {}
    for num in ("1", "3"):
        assert main(argv[:-4] + ["--num", num, "--steps", "1", "--frames", "3", "--out", str(tmp_path / f"{num}.png")]) == 0
        with Image.open(tmp_path / f"{num}.png") as png:
            heights[num] = png.size[1]
    band_and_pad = 34 + 2  # the title and frame numbers, the grid's outer padding
    assert heights["3"] - heights["1"] == 2 * (heights["1"] - band_and_pad)  # one row per clip


def test_one_line_errors(video_run, tmp_path, capsys):
    final = str(video_run / "final")
    base = ["sample", "--model", final, "--prompt", "a red circle moving right", "--steps", "1", "--num", "1"]
    cases = [
        (base + ["--frames", "5", "--out", str(tmp_path / "a.gif")], "--frames: 5 frames, but the motion modules"),
        (base + ["--out", str(tmp_path / "a.jpg")], ".gif (an animated grid) or .png"),
        (["sample", "--model", final, "--out", str(tmp_path / "a.gif")], "give --prompt"),
        (base[:4] + ["a red circle moving sideways", "--out", str(tmp_path / "a.gif")], "unknown word 'sideways'"),
        (["train", "--dataset", "shapes", "--frames", "4", "--out", str(tmp_path / "r")], "--frames: only for"),
        (["sample", "--frames", "4", "--out", str(tmp_path / "g.png")], "--frames is a text-to-video"),
    ]
    (tmp_path / "exists.gif").write_bytes(b"x")
    cases.append((base + ["--out", str(tmp_path / "exists.gif")], "exists; pass --overwrite"))
    for argv, message in cases:
        with pytest.raises(SystemExit) as err:
            main(argv)
        assert message in str(err.value), (argv, str(err.value))
        assert "\n" not in str(err.value)
    assert (tmp_path / "exists.gif").read_bytes() == b"x"
    assert not (tmp_path / "a.gif").exists()


def test_train_text_all_trains_the_whole_text_encoder(tiny_t2i_dir, tmp_path):
    assert main(train_argv(tiny_t2i_dir, tmp_path / "all", steps=1) + ["--train-text", "all"]) == 0
    from tinydiff.pipelines.text_encoding import load_text_encoder

    before, _ = load_text_encoder(tiny_t2i_dir)
    after = TextToVideoPipeline.from_pretrained(tmp_path / "all" / "final").text_encoder
    old, new = before.state_dict(), after.state_dict()
    changed = [k for k in old if k != "text_model.embeddings.token_embedding.weight" and not np.array_equal(old[k], new[k])]
    assert changed  # beyond the token table


def test_train_refuses_image_flags_and_odd_batches(tiny_t2i_dir, tmp_path):
    with pytest.raises(SystemExit, match="--latent: --dataset moving-shapes"):
        main(train_argv(tiny_t2i_dir, tmp_path / "a") + ["--latent", str(tiny_t2i_dir / "vae")])
    with pytest.raises(SystemExit, match="multiple of 4"):
        main(train_argv(tiny_t2i_dir, tmp_path / "b")[:-2] + ["--batch-size", "6", "--out", str(tmp_path / "b")])


def test_the_shipped_video_pipeline_and_sample_without_model(tmp_path):
    from tinydiff.pipelines.checkpoint import load_model
    from tinydiff.pipelines.text_to_video import unet2d_of
    from tinydiff.pretrained import text2image_dir, text2video_dir
    from tinydiff.pretrained.train_video import NUM_FRAMES

    folder = text2video_dir()
    pipe = TextToVideoPipeline.from_pretrained(folder)
    assert pipe.num_frames == NUM_FRAMES and not pipe.unet.config["use_motion_mid_block"]
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 8e6, size  # issue 16: at most 8 MB more, float16
    # motion modules on the FROZEN text-to-image UNet: its image layers are the shipped ones, bit for bit
    shipped, ours = load_model(text2image_dir() / "unet").state_dict(), unet2d_of(pipe.unet).state_dict()
    assert all(np.array_equal(shipped[k], ours[k]) for k in shipped)
    argv = ["sample", "--prompt", "a green triangle moving left", "--num", "1", "--steps", "2", "--frames", "3",
            "--npz", str(tmp_path / "c.npz"), "--out", str(tmp_path / "c.gif")]
    assert main(argv) == 0  # a prompt of motion and no --model: the shipped video pipeline
    assert np.load(tmp_path / "c.npz")["samples"].shape == (1, 3, 3, 32, 32)
