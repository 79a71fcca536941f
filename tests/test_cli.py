import subprocess
import sys

import tinydiff
from tinydiff.cli import main


def test_version_flag(capsys):
    try:
        main(["--version"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert tinydiff.__version__ in capsys.readouterr().out


def test_info_reports_versions_threads_and_blas(capsys):
    import numba
    import numpy as np

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert np.__version__ in out
    assert numba.__version__ in out
    assert "numba threading layer" in out
    assert f"numba threads          {numba.get_num_threads()}" in out
    assert "numpy BLAS" in out
    assert "BLAS threads" in out and "conv2d 3x3" in out


def test_console_entry_point_runs_as_module():
    done = subprocess.run(
        [sys.executable, "-m", "tinydiff", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"tinydiff {tinydiff.__version__}"


TINY_TRAIN = ["train", "--dataset", "glyphs", "--steps", "3", "--batch-size", "4", "--image-size", "8",
              "--channels", "8,8", "--attention", "0,1", "--class-conditional", "--warmup-steps", "1",
              "--sample-every", "0"]


def test_train_sample_export_round_trip(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    out = tmp_path / "run"
    assert main(TINY_TRAIN + ["--out", str(out)]) == 0
    assert (out / "final" / "model_index.json").is_file()
    grid, gif, npz = tmp_path / "grid.png", tmp_path / "denoise.gif", tmp_path / "s.npz"
    assert main(["sample", "--model", str(out / "final"), "--steps", "4", "--num", "6", "--seed", "1",
                 "--out", str(grid), "--gif", str(gif), "--npz", str(npz), "--label", "3"]) == 0
    arrays = np.load(npz)
    assert arrays["samples"].shape == (6, 1, 8, 8) and arrays["samples"].dtype == np.float32
    assert np.all(np.abs(arrays["samples"]) <= 1) and np.all(arrays["labels"] == 3)
    assert Image.open(gif).n_frames == 4 and Image.open(grid).size[0] > 8
    again = tmp_path / "again.npz"
    main(["sample", "--model", str(out / "final"), "--steps", "4", "--num", "6", "--seed", "1",
          "--out", str(tmp_path / "g2.png"), "--npz", str(again), "--label", "3"])
    np.testing.assert_array_equal(np.load(again)["samples"], arrays["samples"])  # same seed, same samples
    exported = tmp_path / "exported"
    assert main(["export", "--model", str(out / "final"), "--diffusers", str(exported)]) == 0
    assert (exported / "unet" / "diffusion_pytorch_model.safetensors").is_file()


def test_cli_errors_are_clear(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit, match="not a tinydiff model"):
        main(["sample", "--model", str(tmp_path), "--out", str(tmp_path / "x.png")])
    with pytest.raises(SystemExit, match="--data-path"):
        main(["train", "--dataset", "mnist", "--out", str(tmp_path / "m")])
    with pytest.raises(SystemExit, match="--attention has 3 entries"):
        main(TINY_TRAIN[:11] + ["--attention", "0,1,1", "--out", str(tmp_path / "a")])
    with pytest.raises(SystemExit):  # argparse: a bad number is a usage error
        main(["sample", "--steps", "0"])
    assert "expected a number >= 1" in capsys.readouterr().err


def test_exported_folder_loads_in_diffusers(tmp_path):
    import numpy as np
    import pytest

    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    from tinydiff.pipelines import load_pipeline

    main(TINY_TRAIN + ["--out", str(tmp_path / "run")])
    main(["export", "--model", str(tmp_path / "run" / "final"), "--diffusers", str(tmp_path / "hf")])
    theirs = diffusers.UNet2DModel.from_pretrained(tmp_path / "hf", subfolder="unet")
    scheduler = diffusers.DDPMScheduler.from_pretrained(tmp_path / "hf", subfolder="scheduler")
    ours, _ = load_pipeline(tmp_path / "run" / "final")
    # --class-conditional trains with condition dropout, so the model has the null class of
    # classifier-free guidance as an 11th embedding row, which diffusers loads by name
    assert (ours.config["num_class_embeds"], ours.config["class_embed_null_index"]) == (11, 10)
    x = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32)
    t, labels = np.array([10, 500, 900]), np.array([1, 7, 10])
    expected = theirs(torch.tensor(x), torch.tensor(t), class_labels=torch.tensor(labels)).sample.detach().numpy()
    np.testing.assert_allclose(ours.eval()(x, t, labels), expected, rtol=1e-4, atol=1e-5)
    assert scheduler.config.beta_schedule == "squaredcos_cap_v2"


def test_sample_without_a_shipped_model_says_what_to_do(tmp_path, monkeypatch):
    import pytest

    import tinydiff.pretrained as pretrained

    monkeypatch.setattr(pretrained, "glyph_model_dir", lambda: tmp_path / "none")
    with pytest.raises(SystemExit, match="tinydiff train --dataset glyphs"):
        main(["sample", "--out", str(tmp_path / "x.png")])
