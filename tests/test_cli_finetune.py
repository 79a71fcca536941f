"""`tinydiff finetune`: a tiny LoRA run on the tiny random pipeline of test_export_sd end to end (the cost lines, the
adapter file that `tinydiff sample --lora` takes), and the one-line refusals made before any work."""

import numpy as np
import pytest
from PIL import Image

from tinydiff.cli.main import main
from tinydiff.data.concepts import instance_images
from tinydiff.nn.lora_model import add_lora, count_lora_parameters


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "pipelines"))
    from test_export_sd import tiny_parts, tiny_pipeline

    folder = tmp_path_factory.mktemp("tiny") / "pipe"
    tiny_pipeline(tiny_parts()).save_pretrained(folder)
    return folder


def expected_lora_numbers():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "pipelines"))
    from test_export_sd import tiny_parts

    unet = tiny_parts().unet
    return len(add_lora(unet, rank=4)), count_lora_parameters(unet)


@pytest.fixture(scope="module")
def instances(tmp_path_factory):
    folder = tmp_path_factory.mktemp("instances")
    images, _ = instance_images("ring")
    for i, img in enumerate(images):
        pixels = np.rint((img.transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return folder


def argv(model, instances, out, *more):
    return ["finetune", "--model", str(model), "--instance-images", str(instances), "--instance-prompt",
            "a sks shape", "--out", str(out), "--steps", "2", "--checkpoint-every", "1", *more]


def test_a_tiny_lora_run_prints_its_cost_and_writes_an_adapter_sample_takes(model, instances, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(argv(model, instances, out, "--with-prior-preservation", "--num-class-images", "4")) == 0
    printed = capsys.readouterr().out
    layers, numbers = expected_lora_numbers()
    assert f"{numbers:,} numbers in {layers} adapted layers" in printed and "KB" in printed
    adapter = out / "final" / "pytorch_lora_weights.safetensors"
    assert adapter.is_file() and adapter.stat().st_size < 200_000
    assert (out / "samples" / "step-0000000.png").is_file() and (out / "samples" / "step-0000002.png").is_file()
    assert main(["sample", "--model", str(model), "--lora", str(adapter), "--prompt", "a sks shape",
                 "--num", "2", "--steps", "2", "--out", str(tmp_path / "s.png")]) == 0
    with pytest.raises(SystemExit, match="already holds a run at step 2 of 2"):
        main(argv(model, instances, out))
    assert main(argv(model, instances, out, "--overwrite")) == 0  # final/ (an adapter) is tinydiff's own: replaced


@pytest.mark.parametrize("more, message", [
    (["--instance-prompt", "a red shape"], "--instance-prompt: expected a prompt naming one of the reserved"),
    (["--class-prompt", "a dog"], "--class-prompt"),
    (["--model", "/nonexistent"], "--model"),
])
def test_bad_flags_are_one_line_before_any_work(model, instances, tmp_path, more, message):
    with pytest.raises(SystemExit, match=message) as err:
        main(argv(model, instances, tmp_path / "run", *more))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


def test_missing_instance_folder_and_contradicting_kinds(model, tmp_path, capsys):
    with pytest.raises(SystemExit, match="--instance-images"):
        main(argv(model, tmp_path / "none", tmp_path / "run"))
    with pytest.raises(SystemExit):
        main(argv(model, tmp_path, tmp_path / "run", "--full", "--lora-rank", "8"))
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_resumed_run_ends_with_the_same_adapter(model, instances, tmp_path):
    import shutil

    from tinydiff.files import load_arrays

    more = ("--with-prior-preservation", "--num-class-images", "4")
    assert main(argv(model, instances, tmp_path / "whole", *more)) == 0
    assert main(argv(model, instances, tmp_path / "chunks", *more)) == 0
    checkpoints = tmp_path / "chunks" / "checkpoints"
    (checkpoints / "latest").write_text("step-0000001\n")  # as if stopped after step 1
    shutil.rmtree(checkpoints / "step-0000002")
    shutil.rmtree(tmp_path / "chunks" / "final")
    assert main(argv(model, instances, tmp_path / "chunks", *more, "--resume")) == 0
    with pytest.raises(SystemExit, match="--lr: the run used"):
        main(argv(model, instances, tmp_path / "chunks", *more, "--resume", "--lr", "0.1"))
    whole, resumed = (load_arrays(tmp_path / run / "final" / "pytorch_lora_weights.safetensors")
                      for run in ("whole", "chunks"))
    assert whole.keys() == resumed.keys()
    for key in whole:
        np.testing.assert_array_equal(whole[key], resumed[key])
