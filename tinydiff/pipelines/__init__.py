"""Training and sampling loops, checkpoints and model folders."""

from tinydiff.pipelines.sampling import sample, scheduler_from_config
from tinydiff.pipelines.pipeline_folder import load_pipeline, save_pipeline
from tinydiff.pipelines.train import TrainConfig, Trainer, TrainingDiverged

__all__ = ["TrainConfig", "Trainer", "TrainingDiverged", "load_pipeline", "sample", "save_pipeline",
           "scheduler_from_config"]
