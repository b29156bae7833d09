"""ExponentialMovingAverage: score_sde's warm-up rule, trainable parameters only, state dicts."""
from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from scoresde.models import ExponentialMovingAverage
from scoresde.models.layers import GaussianFourierProjection


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2), GaussianFourierProjection(5))
    return net


def test_warmup_rule_and_values():
    net = _net()
    params = [p for p in net.parameters() if p.requires_grad]
    ema = ExponentialMovingAverage(net.parameters(), decay=0.9)
    expected = [p.detach().clone() for p in params]
    for n in range(1, 31):
        with torch.no_grad():
            for p in params:
                p.add_(torch.randn_like(p))
        decay = min(0.9, (1 + n) / (10 + n))
        assert ema.current_decay() == pytest.approx(decay)
        ema.update(net.parameters())
        expected = [e - (1 - decay) * (e - p) for e, p in zip(expected, params)]
    assert ema.num_updates == 30
    for shadow, e in zip(ema.shadow_params, expected):
        torch.testing.assert_close(shadow, e)
    no_warmup = ExponentialMovingAverage(net.parameters(), decay=0.9, use_num_updates=False)
    assert no_warmup.current_decay() == 0.9 and no_warmup.num_updates is None


def test_tracks_trainable_parameters_only():
    net = _net()
    ema = ExponentialMovingAverage(net.parameters(), decay=0.99)
    trainable = [p for p in net.parameters() if p.requires_grad]
    # Buffers (BatchNorm statistics) and the frozen Fourier frequencies are not tracked.
    assert len(ema.shadow_params) == len(trainable) == 6
    assert [s.shape for s in ema.shadow_params] == [p.shape for p in trainable]


def test_copy_store_restore():
    net = _net()
    ema = ExponentialMovingAverage(net.parameters(), decay=0.5)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net.parameters())
    current = [p.detach().clone() for p in net.parameters()]
    with ema.average_parameters(net.parameters()):
        for p, s in zip([p for p in net.parameters() if p.requires_grad], ema.shadow_params):
            assert torch.equal(p, s)
    for p, c in zip(net.parameters(), current):
        assert torch.equal(p, c)
    ema.store(net.parameters())
    ema.copy_to(net.parameters())
    ema.restore(net.parameters())
    for p, c in zip(net.parameters(), current):
        assert torch.equal(p, c)
    with pytest.raises(ValueError, match="trainable parameters"):
        ema.copy_to(list(net.parameters())[:2])


def test_state_dict_round_trip_weights_only():
    net = _net()
    ema = ExponentialMovingAverage(net.parameters(), decay=0.999)
    for _ in range(3):
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(1.1)
        ema.update(net.parameters())
    buffer = io.BytesIO()
    torch.save(ema.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert set(state) == {"decay", "num_updates", "shadow_params"}
    other = ExponentialMovingAverage(_net().parameters(), decay=0.5)
    other.load_state_dict(state)
    assert other.decay == 0.999 and other.num_updates == 3
    for a, b in zip(ema.shadow_params, other.shadow_params):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="shadow parameters"):
        other.load_state_dict({**state, "shadow_params": state["shadow_params"][:-1]})
    with pytest.raises(ValueError, match="decay"):
        ExponentialMovingAverage(net.parameters(), decay=1.5)
