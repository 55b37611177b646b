"""Callbacks every stock `Trainer` gets from `import transformers_prune`: kept-token logging, training progress."""

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


def install_keep_ratio_callback() -> None:
    """Make every `Trainer` built after this (stock scripts included) carry `KeepRatioCallback` and
    `TrainingProgressCallback`."""
    for callback in (KeepRatioCallback, TrainingProgressCallback):
        if callback not in trainer_module.DEFAULT_CALLBACKS:
            trainer_module.DEFAULT_CALLBACKS.append(callback)
