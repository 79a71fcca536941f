"""Ctrl-C during training, and a worker whose calling process dies: one line, no traceback.

These run `python -m tinydiff` in a process group of its own and send SIGINT to the whole
group, as a terminal's Ctrl-C does (the DataParallel workers get it too)."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TINY = ["--dataset", "glyphs", "--image-size", "8", "--channels", "8,8", "--attention", "0,1",
        "--batch-size", "4", "--steps", "100000", "--checkpoint-every", "2", "--sample-every", "0"]


def wait_for(condition, timeout, process):
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"exited early ({process.returncode}): {process.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


@pytest.mark.parametrize("processes", [1, 2])
def test_ctrl_c_during_training_says_where_the_last_checkpoint_is(tmp_path, processes):
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "tinydiff", "train", *TINY, "--out", str(out),
                                "--processes", str(processes)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: (out / "checkpoints" / "latest").is_file(), 120, process)
        time.sleep(0.5)  # mid-run, likely mid-step
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    line = re.search(r"tinydiff train: interrupted at step (\d+); the last checkpoint is step (\d+) \((.+)\); "
                     r"continue with --resume", err)
    assert line, err
    assert int(line[1]) >= int(line[2]) >= 2 and Path(line[3]).is_dir()


def running(pid):
    """True while `pid` runs (a zombie, exited but not yet reaped by its new parent, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_worker_whose_caller_died_exits_quietly():
    """The calling process is killed while its worker starts: the worker finds no one to report
    'ready' to (a BrokenPipeError traceback before). One that waits for work when its caller dies
    gets EOFError, which has always been quiet."""
    script = (
        "import os, signal, threading\n"
        "from tinydiff.models import UNet2DModel\n"
        "from tinydiff.runtime.parallel import DataParallel\n"
        "model = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8),\n"
        "                    down_block_types=('DownBlock2D',) * 2, up_block_types=('UpBlock2D',) * 2,\n"
        "                    norm_num_groups=8, layers_per_block=1)\n"
        "die = lambda: os.kill(os.getpid(), signal.SIGKILL)\n"
        "import multiprocessing.context as mc\n"
        "start = mc.SpawnProcess.start\n"
        "def start_and_tell(self):\n"
        "    start(self)\n"
        "    print(self.pid, flush=True)\n"
        "    threading.Timer(0.3, die).start()\n"
        "mc.SpawnProcess.start = start_and_tell\n"
        "parallel = DataParallel(model, 2)\n"
        "die()\n")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    out, err = process.communicate(timeout=120)  # stderr closes once the worker has gone too
    assert process.returncode == -signal.SIGKILL, err
    assert "Traceback" not in err and "Error" not in err, err
    assert not running(int(out.split()[0]))
