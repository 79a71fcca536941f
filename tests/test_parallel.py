"""DataParallel runs a model on slices of the batch in worker processes: the same outputs and
gradients as the model alone (to float32 rounding), weights shared with the workers, errors
reported, and nothing left behind."""

import os

import numpy as np
import pytest

from tinydiff.diffusion import DDPMScheduler
from tinydiff.models import UNet2DModel
from tinydiff.nn import mse_loss
from tinydiff.runtime.parallel import DataParallel, ParallelRunner, _send, default_processes
from tinydiff.pipelines import TrainConfig, Trainer
from tinydiff.pipelines.data_sources import make_source

TINY = dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
            down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
            norm_num_groups=4, attention_head_dim=4, layers_per_block=1, num_class_embeds=10)


def tiny_unet(seed=0):
    return UNet2DModel(rng=np.random.default_rng(seed), **TINY)


def batch(n, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
    return x, rng.integers(0, 1000, n), rng.integers(0, 10, n), rng.standard_normal((n, 1, 8, 8)).astype(np.float32)


def shared_blocks(parallel):
    """The runner's own shared-memory blocks that still exist (other processes on the machine
    may create and remove psm_* blocks of their own meanwhile)."""
    return {shm.name for shm in parallel._shms if os.path.exists(f"/dev/shm/{shm.name}")}


def test_outputs_and_gradients_match_the_model_alone_and_workers_see_new_weights():
    alone, split = tiny_unet(), tiny_unet()
    x, t, labels, target = batch(7)  # 4 + 3 images: slices need not be equal
    with DataParallel(split, processes=2) as parallel:
        blocks = list(parallel._shms)
        assert shared_blocks(parallel)  # the parameters now live in shared memory
        for model in (alone, parallel):
            model.train()
        for step in range(2):
            out_alone, out_split = alone(x, t, labels), parallel(x, t, labels)
            np.testing.assert_allclose(out_split, out_alone, rtol=1e-5, atol=1e-5)
            _, d_alone = mse_loss(out_alone, target)
            _, d_split = mse_loss(out_split, target)
            alone.zero_grad()
            parallel.zero_grad()
            dx_alone, dx_split = alone.backward(d_alone), parallel.backward(d_split)
            np.testing.assert_allclose(dx_split, dx_alone, rtol=1e-4, atol=1e-6)
            for (name, p), q in zip(alone.named_parameters(), split.parameters()):
                scale = max(float(np.abs(p.grad).max()), 1e-3)  # to_k's bias gradient is round-off
                assert np.abs(q.grad - p.grad).max() <= 1e-4 * scale, name
            for p, q in zip(alone.parameters(), split.parameters()):  # an optimiser's in-place update
                p.data -= 0.1 * p.grad
                q.data -= 0.1 * q.grad
        parallel.eval()
        np.testing.assert_allclose(parallel(x, t, labels), alone.eval()(x, t, labels), rtol=1e-5, atol=1e-5)
    assert blocks and not any(os.path.exists(f"/dev/shm/{shm.name}") for shm in blocks)  # close() removed them
    for p, q in zip(alone.parameters(), split.parameters()):
        assert q.data.flags.owndata  # out of shared memory
        np.testing.assert_allclose(q.data, p.data, rtol=1e-5, atol=1e-6)


def test_a_workers_error_is_raised_with_its_traceback():
    with DataParallel(tiny_unet(), processes=2) as parallel:
        _, conn, _ = parallel._workers[0]
        _send(conn, "backward", [np.zeros((2, 1, 8, 8), np.float32)], backend="fast")  # no forward before
        with pytest.raises(RuntimeError, match="(?s)worker 1 failed.*no saved forward pass"):
            parallel._expect(0, "done")


def test_small_batches_run_here_and_bad_arguments_are_named():
    model = tiny_unet()
    x, t, labels, _ = batch(1)
    with DataParallel(model, processes=2) as parallel:
        np.testing.assert_array_equal(parallel(x, t, labels), model(x, t, labels))
    with pytest.raises(RuntimeError, match="after close"):
        parallel(x, t, labels)
    with pytest.raises(ValueError, match="processes must be an int >= 2"):
        DataParallel(model, processes=1)
    with pytest.raises(TypeError, match="config"):
        DataParallel(object(), processes=2)
    assert 1 <= default_processes(64) <= os.cpu_count() and default_processes(2) == 1
    with pytest.raises(ValueError, match="^processes: expected an integer >= 1, got 0"):
        ParallelRunner(0)
    with pytest.raises(TypeError, match=r"^processes: expected an integer >= 1, got 2.0 \(a float\)"):
        ParallelRunner(2.0)


def test_a_runner_of_one_process_runs_the_model_itself():
    model = tiny_unet()
    with ParallelRunner(1).running(model) as net:
        assert net is model


def test_training_in_two_processes_is_reproducible_and_close_to_one_process(tmp_path):
    def train(processes, out):
        config = TrainConfig(steps=3, batch_size=8, warmup_steps=1, checkpoint_every=3, sample_steps=2,
                             num_samples=2)
        model = tiny_unet()
        trainer = Trainer(model, DDPMScheduler(), make_source("glyphs", 8, 0, image_size=8, labelled=True),
                          config, tmp_path / out, progress=False, parallel=ParallelRunner(processes))
        log = trainer.run()
        return model, log
    one, log_one = train(1, "one")
    two, log_two = train(2, "two")
    again, log_again = train(2, "again")
    assert log_two == log_again
    for (name, a), b, c in zip(two.named_parameters(), again.parameters(), one.parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)  # same seed, same weights
        np.testing.assert_allclose(a.data, c.data, rtol=1e-3, atol=1e-4, err_msg=name)


def test_dropout_masks_follow_the_models_own_generators():
    from tinydiff.nn import Dropout
    model = UNet2DModel(rng=np.random.default_rng(0), dropout=0.3, **TINY)
    dropouts = [m for m in model.modules() if isinstance(m, Dropout)]
    states = [m.rng.bit_generator.state for m in dropouts]
    x, t, labels, _ = batch(6)
    with DataParallel(model, processes=2) as parallel:
        parallel.train()
        first, second = parallel(x, t, labels), parallel(x, t, labels)
        parallel.backward(np.ones_like(first))
        assert not np.allclose(first[3:], second[3:])  # the worker's masks change from step to step
        for m, state in zip(dropouts, states):  # as a resumed checkpoint restores them
            m.rng.bit_generator.state = state
        np.testing.assert_array_equal(parallel(x, t, labels), first)


def test_an_error_in_this_process_closes_the_object():
    model = tiny_unet()
    x, t, labels, _ = batch(4)
    labels[0] = 99  # not a class: the calling process's own slice fails, the worker's does not
    parallel = DataParallel(model, processes=2)
    with pytest.raises(Exception, match="99|class|label|index"):
        parallel(x, t, labels)
    assert parallel._data_shm is None and not parallel._workers  # closed: no stale replies read later
    with pytest.raises(RuntimeError, match="after close"):
        parallel(x, t, batch(4)[2])
    assert all(p.data.flags.owndata for p in model.parameters())


def test_a_run_resumes_with_another_process_count(tmp_path):
    def trainer(processes):
        config = TrainConfig(steps=4, batch_size=4, warmup_steps=1, checkpoint_every=2)
        parallel = None if processes == 1 else ParallelRunner(processes)
        return Trainer(tiny_unet(), DDPMScheduler(), make_source("glyphs", 4, 0, image_size=8, labelled=True),
                       config, tmp_path, progress=False, parallel=parallel)
    first = trainer(1)
    first.run(until=2)
    again = trainer(2)
    again.run(resume=True, until=2)  # loads step 2; nothing left to run, so no worker starts
    assert again.step == 2
    for a, b in zip(first.model.parameters(), again.model.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    changed = trainer(1)
    changed.config.lr = 1e-4
    with pytest.raises(ValueError, match=r"differ from the run in .*lr: the run used 0.002, now 0.0001"):
        changed.run(resume=True, until=2)
