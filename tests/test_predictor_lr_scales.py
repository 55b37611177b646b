"""The predictors' learning-rate scales of Transkimmer (`skim_lr_scale`) and AdapLeR (`cp_lr_scale`): a fresh model
starts with the same logits at any scale, the predictor's last Linear moves the logits `scale` times faster under
Adam, and a trained model refuses a changed scale (its weights are in the scale's units)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModel

from model_testers import TESTERS

# model type -> (scale key, the encoder's predictor list, the predictor's last Linear)
SCALED_PREDICTORS = {
    "transkimmer-bert": ("skim_lr_scale", "skim_predictors", "classifier"),
    "adapler-bert": ("cp_lr_scale", "contribution_predictors", "output"),
}


def fresh_predictor(model_type: str, scale: float):
    key, predictors, _ = SCALED_PREDICTORS[model_type]
    torch.manual_seed(0)
    model = AutoModel.from_config(TESTERS[model_type].make_config(**{key: scale}))
    return getattr(model.encoder, predictors)[1]


@pytest.mark.parametrize("model_type", SCALED_PREDICTORS)
def test_scale_starts_the_same_logits_and_moves_them_scale_times_faster(model_type):
    hidden = torch.randn(2, 7, TESTERS[model_type].make_config().hidden_size)
    start, moved = {}, {}
    for scale in (1.0, 10.0):
        predictor = fresh_predictor(model_type, scale)
        last = getattr(predictor, SCALED_PREDICTORS[model_type][2])
        optimizer = torch.optim.Adam(last.parameters(), lr=1e-3)
        start[scale] = predictor(hidden).detach()
        predictor(hidden).sum().backward()
        optimizer.step()
        moved[scale] = start[scale] - predictor(hidden).detach()
    torch.testing.assert_close(start[10.0], start[1.0], rtol=1e-5, atol=1e-6)
    assert (moved[1.0] > 0).all()  # the step lowers every logit
    torch.testing.assert_close(moved[10.0], 10 * moved[1.0], rtol=1e-3, atol=1e-7)


@pytest.mark.parametrize("model_type", SCALED_PREDICTORS)
def test_changed_scale_on_a_built_model_is_refused(model_type, batch):
    key = SCALED_PREDICTORS[model_type][0]
    model = AutoModel.from_config(TESTERS[model_type].make_config(**{key: 5.0})).eval()
    setattr(model.config, key, 1.0)
    input_ids, attention_mask = batch
    with pytest.raises(ValueError, match=f"{key}=1.0 differs from 5.0"):
        model(input_ids=input_ids, attention_mask=attention_mask)
