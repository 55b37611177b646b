"""`autobert`: TR-BERT (Ye et al., "TR-BERT: Dynamic Token Reduction for Accelerating BERT Inference", NAACL 2021).

On the input of a few layers (by default 1 and L // 2) a selector gives every live token a keep-probability; a
dropped token leaves the encoder for good, its state at that moment forwarded to the output (so span heads see
every position); [CLS] always stays. The selectors are a policy trained by REINFORCE: every input is run as
`rl_num_samples` rollouts whose keep/drop actions are sampled from the policy, each rollout's reward is
-task loss - `alpha` x kept fraction, and the mean reward of an input's rollouts is the baseline. Stage
"train_rl" trains the selectors alone (BERT frozen), optionally imitating, for the first `guide_rate` of the
steps, the gradient-residual heuristic in one rollout per input (`transformers-prune autobert-targets`);
stage "train_both" trains everything, the task loss taken through the sampled reduced forward, optionally
distilled from `teacher_logits`. Inference keeps a token when its probability is >= `keep_threshold`.

Differences from the official code (thunlp/TR-BERT), each listed in our research notes:

- Inference decides per example and removes tokens for real at any batch size on the packed engine; the
  original pads every row of a batch to the batch's largest kept count, with unmasked extra tokens, so its
  results and FLOPs depend on the batch size (it reports FLOPs at batch size 1 only).
- The kept fraction in the reward is over real tokens; the original divides by the padded training length
  (512), so alpha's strength depended on document length (`AutoBertConfig.alpha` gives the mapping).
- The policy's log-likelihood and the expert's count leave out [CLS], whose action is fixed; the original
  includes its (constant) term. A negligible difference.
- Rollouts run on the packed engine as well: layers before the first selection run once per input, and each
  rollout then computes on its kept tokens only (the original multiplies by 0/1 "zoom" matrices and pads).
- Training runs attention through SDPA on live tokens, without dropout on the attention probabilities (BERT's
  hidden-state dropout is kept).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import can_return_tuple, logging

from .configuration_autobert import AutoBertConfig
from .modeling_token_pruning import (
    TokenPruningEncoder,
    TokenPruningForQuestionAnswering,
    TokenPruningForSequenceClassification,
    TokenPruningForTokenClassification,
    TokenPruningModel,
    TokenPruningModelOutput,
    TokenPruningPreTrainedModel,
    TokenPruningQuestionAnsweringOutput,
    TokenPruningSequenceClassifierOutput,
    TokenPruningTokenClassifierOutput,
    packed_result,
    sequence_classification_loss,
    span_loss,
    token_classification_loss,
)
from .token_engine import PackedBatch, configured_attention_backend, pack, repeat_examples
from .token_selection import BEFORE_LAYER, EncoderResult, SelectionTrace, run_packed_layers
from .token_views import PackedView, TokenView

logger = logging.get_logger(__name__)

LOG_EPSILON = 1e-6  # inside the logs of the policy's likelihood, as the original


class AutoBertSelector(nn.Module):
    """Linear(hidden, selector_hidden_size) -> GELU -> Linear(selector_hidden_size, 1) -> sigmoid: each token's
    probability of being kept."""

    def __init__(self, config: AutoBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.selector_hidden_size)
        self.activation = nn.GELU()
        self.output = nn.Linear(config.selector_hidden_size, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.output(self.activation(self.dense(hidden))).squeeze(-1))


@dataclass
class RolloutState:
    """One training forward's rollouts: whether the selectors build a graph (they do in every stage), the
    expert's `[B * K, P, S]` imitation scores when this step imitates, and each rollout's `[B * K]` summed
    log-likelihood of its sampled actions."""

    grad_enabled: bool
    imitation_scores: torch.Tensor | None
    action_log_prob: torch.Tensor


class AutoBertEncoder(TokenPruningEncoder):
    """`selectors.i` runs on the input of layer `config.selection_layers[i]`. Inference keeps a token when its
    probability is >= `keep_threshold`; training samples keep/drop actions in `rl_num_samples` rollouts per input
    (`forward_rollouts`)."""

    def __init__(self, config: AutoBertConfig):
        super().__init__(config)
        self.selectors = nn.ModuleList(AutoBertSelector(config) for _ in config.selection_layers)
        self.selector_of_layer = {layer: point for point, layer in enumerate(config.selection_layers)}
        self.training_progress = 0.0

    def set_training_progress(self, fraction: float) -> None:
        """Imitation (`guide_rate`) applies while the fraction of training done is below `guide_rate`."""
        self.training_progress = fraction

    def decision_point(self, index: int) -> str | None:
        return BEFORE_LAYER if index in self.selector_of_layer else None

    def keep_values(self, index: int, view: TokenView, trace: SelectionTrace, received=None) -> torch.Tensor:
        point = self.selector_of_layer[index]
        rollouts = trace.method if isinstance(trace.method, RolloutState) else None
        if rollouts is None:
            return self.selectors[point](view.hidden) >= self.config.keep_threshold
        with torch.set_grad_enabled(rollouts.grad_enabled):  # the selectors learn in every stage
            probs = self.selectors[point](view.hidden)
            scores = None if rollouts.imitation_scores is None else view.from_grid(rollouts.imitation_scores[:, point])
            actions, log_likelihood = self._sample_actions(probs, view, scores)
            rollouts.action_log_prob = rollouts.action_log_prob + log_likelihood
        return actions

    def forward_rollouts(
        self, batch: PackedBatch, attention_backend: str, output_hidden_states: bool, method_inputs: dict[str, torch.Tensor]
    ) -> tuple[PackedBatch, list[torch.Tensor], tuple[torch.Tensor, ...] | None, torch.Tensor]:
        """Training: the layers before the first selection once per input, then `rl_num_samples` rollouts per
        input (example i's rollouts are rows i * K ... i * K + K - 1), each sampling its keep/drop actions. Returns
        the batch after the last layer, the `[B * K]` tokens entering each layer, the states (when asked) and each
        rollout's `[B * K]` log-likelihood of its actions. In stage "train_rl" BERT runs without autograd; only the
        selectors build a graph."""
        self.check_built_settings()
        config, rollouts = self.config, self.config.rl_num_samples
        first, num_layers = config.selection_layers[0], config.num_hidden_layers
        grad_enabled = torch.is_grad_enabled()
        imitation = self._imitation_scores(method_inputs.get("residual_scores"), batch)
        with torch.set_grad_enabled(grad_enabled and config.training_stage != "train_rl"):
            batch, prefix_counts, prefix_hidden = run_packed_layers(
                self.layer, batch, attention_backend, None, None, output_hidden_states, range(first), self
            )
            batch = repeat_examples(batch, rollouts)
            trace = SelectionTrace(method_inputs, batch.num_tokens)
            trace.method = RolloutState(
                grad_enabled, None if imitation is None else imitation.repeat_interleave(rollouts, 0),
                batch.hidden.new_zeros(batch.batch_size),
            )
            batch, counts, hidden_states = run_packed_layers(
                self.layer, batch, attention_backend, self, trace, output_hidden_states, range(first, num_layers), self
            )
        counts = [count.repeat_interleave(rollouts) for count in prefix_counts] + counts
        if output_hidden_states:
            hidden_states = tuple(h.repeat_interleave(rollouts, 0) for h in prefix_hidden[:-1]) + hidden_states
        return batch, counts, hidden_states, trace.method.action_log_prob

    def _imitation_scores(self, residual_scores: torch.Tensor | None, batch: PackedBatch) -> torch.Tensor | None:
        """`[B, P, S]` heuristic scores when this step imitates (stage "train_rl", within `guide_rate`), else None."""
        config = self.config
        if config.training_stage != "train_rl" or self.training_progress >= config.guide_rate:
            return None
        if residual_scores is None:
            logger.warning_once(
                "autobert is training with guide_rate > 0 but without `residual_scores` inputs, so without imitation; "
                "compute them with `transformers-prune autobert-targets` and train on the file it writes"
            )
            return None
        expected = (batch.batch_size, len(config.selection_layers))
        if residual_scores.dim() != 3 or tuple(residual_scores.shape[:2]) != expected or residual_scores.shape[2] < batch.seq_len:
            raise ValueError(
                f"residual_scores must be [batch, {expected[1]} selection layers, >= {batch.seq_len} positions], got "
                f"shape {tuple(residual_scores.shape)} for a batch of {batch.batch_size}"
            )
        return residual_scores[:, :, : batch.seq_len].to(batch.hidden.dtype)

    def _sample_actions(
        self, probs: torch.Tensor, view: PackedView, scores: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keep/drop actions of every rollout's live tokens ([CLS] always kept) and `[B * K]` log-likelihood of
        each rollout's actions under the policy (mean over the tokens decided). With `scores` (`[N]`, the expert's
        score of each token), the first rollout of each input takes the expert's actions instead: the top
        round(sum p) tokens by score."""
        first_token = view.first_token
        decided = (~first_token).to(probs.dtype)
        sample_prob = probs.detach()
        if scores is not None:
            expected_kept = view.segment_sum(sample_prob * decided).round()  # [B * K]
            expert = view.segment_rank(scores.masked_fill(first_token, -torch.inf)) < view.per_token(expected_kept)
            # repeat_examples lays out example i's rollouts as rows i * K ... i * K + K - 1: the first is guided.
            is_guided = view.batch.example_ids() % self.config.rl_num_samples == 0
            sample_prob = torch.where(is_guided, expert.to(probs.dtype), sample_prob)
        actions = torch.bernoulli(sample_prob).bool() | first_token
        log_likelihood = torch.where(actions, torch.log(probs + LOG_EPSILON), torch.log(1 - probs + LOG_EPSILON))
        return actions, view.segment_sum(log_likelihood * decided) / view.segment_sum(decided).clamp_min(1)


def policy_gradient_loss(
    config: AutoBertConfig,
    task_losses: torch.Tensor,
    action_log_prob: torch.Tensor,
    tokens_per_layer: torch.Tensor,
    real_tokens: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training loss and its method term from `[B * K]` per-rollout task losses.

    reward = -task loss - alpha x (mean over selection layers of kept / real tokens); advantage = reward - the
    mean reward of the input's K rollouts; REINFORCE's surrogate = -mean(advantage x log-likelihood of the
    actions), whose descent is the policy gradient's ascent.

    The value of the loss is minus the mean reward: the mean task loss plus the method term alpha x the mean kept
    fraction, never negative, so a logged `loss` reads as the task loss and the cost of the kept tokens. The
    surrogate, whose value means nothing (it is centred on 0 by the baseline), enters as `s - s.detach()`: its
    gradient, value 0. Which parameters learn is the stage's: in "train_rl" only the selectors have gradients (BERT
    and the head run frozen, so the task loss carries none), in "train_both" the task loss trains everything.
    """
    rollouts = config.rl_num_samples
    kept_fraction = tokens_per_layer[:, config.selection_layers].float().mean(dim=1) / real_tokens
    length_cost = config.alpha * kept_fraction
    reward = -(task_losses.detach() + length_cost).view(-1, rollouts)
    advantage = (reward - reward.mean(dim=1, keepdim=True)).flatten()
    surrogate = -(advantage * action_log_prob).mean()
    method_term = length_cost.mean() + (surrogate - surrogate.detach())
    return task_losses.mean() + method_term, method_term


def soft_cross_entropy(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """`[N]` cross-entropy of the student against the teacher's softened distribution (no tau^2 factor, as the
    original)."""
    teacher = torch.softmax(teacher_logits.to(logits.dtype) / temperature, dim=-1)
    return -(teacher * F.log_softmax(logits / temperature, dim=-1)).sum(dim=-1)


@dataclass
class AutoBertModelOutput(TokenPruningModelOutput):
    """`TokenPruningModelOutput`, plus in training `action_log_prob`: `[B * K]` log-likelihood of each rollout's
    sampled keep/drop actions (the base model's training outputs have one row per rollout)."""

    action_log_prob: torch.FloatTensor | None = None


@dataclass
class AutoBertSequenceClassifierOutput(TokenPruningSequenceClassifierOutput):
    """In training, every field has one row per input (means over its rollouts); `action_log_prob` is `[B, K]`."""

    action_log_prob: torch.FloatTensor | None = None


@dataclass
class AutoBertQuestionAnsweringOutput(TokenPruningQuestionAnsweringOutput):
    """In training, every field has one row per input (means over its rollouts); `action_log_prob` is `[B, K]`."""

    action_log_prob: torch.FloatTensor | None = None


@dataclass
class AutoBertTokenClassifierOutput(TokenPruningTokenClassifierOutput):
    """In training, every field has one row per input (means over its rollouts); `action_log_prob` is `[B, K]`."""

    action_log_prob: torch.FloatTensor | None = None


class AutoBertPreTrainedModel(TokenPruningPreTrainedModel):
    config_class = AutoBertConfig
    config: AutoBertConfig

    def post_init(self):
        super().post_init()
        self.apply_training_stage()

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """As HF's, then `apply_training_stage`: HF materialises the loaded parameters after `post_init`, which
        would undo the freeze."""
        loaded = super().from_pretrained(*args, **kwargs)
        (loaded[0] if isinstance(loaded, tuple) else loaded).apply_training_stage()
        return loaded

    def untrained_start_problem(self) -> str | None:
        if self.config.training_stage == "train_rl":
            return (
                "training_stage='train_rl' trains the selectors alone with BERT and the head frozen, so the head "
                "never learns the task (TR-BERT's policy stage starts from a fine-tuned model)"
            )
        # Measured on SST-2 from the pre-trained MiniLM with run_glue.py: 4.8% of the tokens kept, 51.7% accuracy.
        return (
            "TR-BERT's reward needs a model that already knows its task: with an untrained head every rollout's task "
            "loss is noise, the length term alone steers the policy, and it learns to drop almost every token"
        )

    def apply_training_stage(self) -> None:
        """Stage "train_rl" trains the selectors alone: every other parameter gets `requires_grad=False`, so the
        stock `Trainer`'s optimizer holds only the selectors; "train_both" trains everything."""
        self.requires_grad_(self.config.training_stage != "train_rl")
        for module in self.modules():
            if isinstance(module, AutoBertSelector):
                module.requires_grad_(True)

    def rollout_rows(self, tensor: torch.Tensor | None) -> torch.Tensor | None:
        """An input of `[B, ...]` as `[B * K, ...]`, one row per training rollout."""
        return None if tensor is None else tensor.repeat_interleave(self.config.rl_num_samples, 0)

    def per_input(self, tensor: torch.Tensor) -> torch.Tensor:
        """`[B * K, ...]` rollout rows as `[B, ...]` means over each input's rollouts (counts rounded)."""
        rows = tensor.view(-1, self.config.rl_num_samples, *tensor.shape[1:])
        if tensor.dtype.is_floating_point:
            return rows.mean(dim=1)
        return rows.float().mean(dim=1).round().to(tensor.dtype)

    def finish_training_outputs(self, outputs, task_losses: torch.Tensor | None, real_tokens: torch.Tensor):
        """Training outputs of a head from its `[B * K]` rollout rows: TR-BERT's loss from the per-rollout task
        losses (when there are labels or teacher logits), then one row per input for every field: means over the
        rollouts, and `action_log_prob` as `[B, K]`."""
        changes = {}
        if task_losses is not None:
            changes["loss"], changes["pruning_loss"] = policy_gradient_loss(
                self.config, task_losses, outputs.action_log_prob, outputs.tokens_per_layer,
                self.rollout_rows(real_tokens).to(task_losses.dtype),
            )
        for field in dataclasses.fields(outputs):
            value = getattr(outputs, field.name)
            if field.name in ("loss", "pruning_loss") or value is None:
                continue
            if field.name == "action_log_prob":
                changes[field.name] = value.view(-1, self.config.rl_num_samples)
            elif isinstance(value, tuple):
                changes[field.name] = tuple(self.per_input(layer) for layer in value)
            else:
                changes[field.name] = self.per_input(value)
        # A new record, not attribute writes: ModelOutput only lists (for `outputs["loss"]`, tuples) the fields set at init.
        return dataclasses.replace(outputs, **changes)

    def teacher(
        self, name: str, teacher: torch.Tensor | None, expected_shape: tuple[int, ...], per_position: bool = False
    ) -> torch.Tensor:
        """A checked teacher input, as `[B * K, ...]` rows. With `per_position` (`expected_shape` `(B, S)`), a
        teacher stored at the training max length (`[B, >= S]`) is cut to the batch's S positions."""
        if teacher is None:
            raise ValueError(f"train_teacher=True needs `{name}` with every training input (`transformers-prune autobert-targets` writes them)")
        if per_position and teacher.dim() == 2 and teacher.shape[0] == expected_shape[0] and teacher.shape[1] >= expected_shape[1]:
            teacher = teacher[:, : expected_shape[1]]
        if tuple(teacher.shape) != expected_shape:
            wanted = f"({expected_shape[0]}, >= {expected_shape[1]})" if per_position else str(expected_shape)
            raise ValueError(f"{name} must have shape {wanted}, got {tuple(teacher.shape)}")
        return self.rollout_rows(teacher)


def real_token_counts(attention_mask, input_ids, inputs_embeds) -> torch.Tensor:
    """`[B]` real tokens of each input."""
    if attention_mask is not None:
        return attention_mask.sum(dim=1)
    reference = input_ids if input_ids is not None else inputs_embeds
    return torch.full(reference.shape[:1], reference.shape[1], device=reference.device)


class AutoBertModel(AutoBertPreTrainedModel, TokenPruningModel):
    """BERT with TR-BERT's selectors. In training every output has `rl_num_samples` rows per input (rollouts)."""

    encoder_class = AutoBertEncoder
    output_class = AutoBertModelOutput
    method_input_names = ("residual_scores",)

    def encode(self, hidden, attention_mask, output_hidden_states, output_attentions, method_inputs) -> EncoderResult:
        if not self.training:
            return super().encode(hidden, attention_mask, output_hidden_states, output_attentions, method_inputs)
        if output_attentions:
            raise ValueError("output_attentions is not available in training: autobert's rollouts run on the packed engine")
        full_length = self.every_position or output_hidden_states
        batch = pack(hidden, attention_mask, keep_restore_buffer=full_length)
        batch, counts, hidden_states, action_log_prob = self.encoder.forward_rollouts(
            batch, configured_attention_backend(self.config, hidden), output_hidden_states, method_inputs
        )
        return packed_result(batch, counts, hidden_states, full_length, {"action_log_prob": action_log_prob})


class AutoBertForSequenceClassification(AutoBertPreTrainedModel, TokenPruningForSequenceClassification):
    model_class = AutoBertModel
    output_class = AutoBertSequenceClassifierOutput

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
                labels=None, residual_scores=None, teacher_logits=None, **kwargs):
        """As `BertForSequenceClassification`, plus two training inputs: `residual_scores` (`[B, P, S]` imitation
        scores) and `teacher_logits` (`[B, num_labels]`, read when `train_teacher`). In training the loss is
        TR-BERT's (`policy_gradient_loss`) and `logits` are the mean over the rollouts."""
        outputs = super().forward(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, None if self.training else labels,
            residual_scores=residual_scores, return_dict=True, **kwargs,
        )
        if not self.training:
            return outputs
        task_losses = None
        if self.config.train_teacher:
            teacher = self.teacher("teacher_logits", teacher_logits, (outputs.logits.shape[0] // self.config.rl_num_samples, self.num_labels))
            task_losses = soft_cross_entropy(outputs.logits, teacher, self.config.kd_temperature)
        elif labels is not None:
            task_losses = sequence_classification_loss(self.config, outputs.logits, self.rollout_rows(labels), reduction="none")
        real = real_token_counts(attention_mask, input_ids, inputs_embeds)
        return self.finish_training_outputs(outputs, task_losses, real)


class AutoBertForQuestionAnswering(AutoBertPreTrainedModel, TokenPruningForQuestionAnswering):
    """Span logits over every position: a token dropped by a selector keeps the state it had when dropped."""

    model_class = AutoBertModel
    output_class = AutoBertQuestionAnsweringOutput

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
                start_positions=None, end_positions=None, residual_scores=None, teacher_start_logits=None,
                teacher_end_logits=None, **kwargs):
        """As `BertForQuestionAnswering`, plus the training inputs `residual_scores` (`[B, P, S]`) and, when
        `train_teacher`, `teacher_start_logits` / `teacher_end_logits` (`[B, >= S]`: stored at the training
        max length, cut to the batch's S positions; the soft cross-entropies of both are summed, as the original).
        In training the span logits are the mean over the rollouts."""
        outputs = super().forward(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            None if self.training else start_positions, None if self.training else end_positions,
            residual_scores=residual_scores, return_dict=True, **kwargs,
        )
        if not self.training:
            return outputs
        task_losses = None
        shape = (outputs.start_logits.shape[0] // self.config.rl_num_samples, outputs.start_logits.shape[1])
        if self.config.train_teacher:
            temperature = self.config.kd_temperature
            start_teacher, end_teacher = (
                self.teacher(name, logits, shape, per_position=True)
                for name, logits in (("teacher_start_logits", teacher_start_logits), ("teacher_end_logits", teacher_end_logits))
            )
            task_losses = soft_cross_entropy(outputs.start_logits, start_teacher, temperature) + soft_cross_entropy(
                outputs.end_logits, end_teacher, temperature
            )
        elif start_positions is not None and end_positions is not None:
            task_losses = span_loss(
                outputs.start_logits, outputs.end_logits, self.rollout_rows(start_positions.view(-1)),
                self.rollout_rows(end_positions.view(-1)), reduction="none",
            )
        real = real_token_counts(attention_mask, input_ids, inputs_embeds)
        return self.finish_training_outputs(outputs, task_losses, real)


class AutoBertForTokenClassification(AutoBertPreTrainedModel, TokenPruningForTokenClassification):
    """Per-token labels over every position: a dropped token keeps the state it had when dropped."""

    model_class = AutoBertModel
    output_class = AutoBertTokenClassifierOutput

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
                labels=None, residual_scores=None, **kwargs):
        """As `BertForTokenClassification`, plus the training input `residual_scores` (`[B, P, S]`). A rollout's
        task loss is the mean cross-entropy over its labelled tokens."""
        outputs = super().forward(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, None if self.training else labels,
            residual_scores=residual_scores, return_dict=True, **kwargs,
        )
        if not self.training:
            return outputs
        task_losses = None
        if labels is not None:
            task_losses = token_classification_loss(outputs.logits, self.rollout_rows(labels), reduction="none")
        real = real_token_counts(attention_mask, input_ids, inputs_embeds)
        return self.finish_training_outputs(outputs, task_losses, real)


__all__ = [
    "AutoBertForQuestionAnswering",
    "AutoBertForSequenceClassification",
    "AutoBertForTokenClassification",
    "AutoBertModel",
    "AutoBertPreTrainedModel",
    "AutoBertSelector",
    "policy_gradient_loss",
]
