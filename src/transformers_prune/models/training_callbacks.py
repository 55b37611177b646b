"""Callbacks every stock `Trainer` gets once one of our token-pruning models exists: kept-token logging and the
training progress that methods with a schedule read (AdapLeR's annealing, TR-BERT's `guide_rate`).

The model installs them itself when it is built (`TokenPruningPreTrainedModel.post_init`), before a script builds its
`Trainer`, so a stock script that loads a checkpoint with `trust_remote_code=True`, this package not installed,
trains the same schedule. Lives beside the modeling files because it is copied with them into every checkpoint."""

from transformers import TrainerCallback
from transformers import trainer as trainer_module


class KeepRatioCallback(TrainerCallback):
    """Adds `kept_fraction` and `kept_fraction_layer_<i>` (means over the batches since the last log) to each log.

    The model accumulates the figures itself during training forwards; models without them are left alone.
    """

    def on_log(self, args, state, control, model=None, logs=None, **kwargs):
        pop_stats = getattr(model, "pop_token_stats", None)
        if pop_stats is None or logs is None or "loss" not in logs:
            return
        stats = pop_stats()
        logs.update(stats)
        # Trainer appends `logs` to log_history before callbacks run; keep the saved history complete too.
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(stats)


class TrainingProgressCallback(TrainerCallback):
    """Before every step, tells the model how far training is (`global_step / max_steps`), for methods whose
    training follows a schedule (AdapLeR anneals its soft mask to hard); models without one are left alone."""

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        set_progress = getattr(model, "set_training_progress", None)
        if set_progress is not None and state.max_steps > 0:
            set_progress(state.global_step / state.max_steps)


def install_training_callbacks() -> None:
    """Make every `Trainer` built after this (stock scripts included) carry `KeepRatioCallback` and
    `TrainingProgressCallback`. Matched by name: the package's classes and a checkpoint's copied code both define
    them, and a Trainer must get each once."""
    installed = {callback.__name__ for callback in trainer_module.DEFAULT_CALLBACKS}
    for callback in (KeepRatioCallback, TrainingProgressCallback):
        if callback.__name__ not in installed:
            trainer_module.DEFAULT_CALLBACKS.append(callback)


__all__ = ["KeepRatioCallback", "TrainingProgressCallback", "install_training_callbacks"]
