"""Backbones: the centre-tap convolution is the convolution, exactly, on every input size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pah_core.models.backbones import CentreTapConv2d, ResNet18Features, use_centre_tap_convs


@pytest.mark.parametrize("size", [1, 2, 3, 5])
@pytest.mark.parametrize(("kernel", "stride"), [(3, 1), (3, 2), (1, 1), (1, 2), (7, 2)])
def test_centre_tap_conv_equals_conv_forward_and_backward(size, kernel, stride):
    torch.manual_seed(0)
    ref = nn.Conv2d(8, 6, kernel, stride=stride, padding=kernel // 2, bias=True).double()
    fast = use_centre_tap_convs(nn.Sequential(nn.Conv2d(8, 6, kernel, stride, kernel // 2)))[0]
    assert type(fast) is CentreTapConv2d
    fast = fast.double()
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(4, 8, size, size, dtype=torch.double, requires_grad=True)
    xr = x.detach().clone().requires_grad_()
    out, out_ref = fast(x), ref(xr)
    assert out.shape == out_ref.shape
    torch.testing.assert_close(out, out_ref)
    g = torch.randn_like(out)
    out.backward(g)
    out_ref.backward(g)
    torch.testing.assert_close(x.grad, xr.grad)
    torch.testing.assert_close(fast.weight.grad, ref.weight.grad)
    torch.testing.assert_close(fast.bias.grad, ref.bias.grad)


def test_convs_that_are_not_same_padded_stay_plain():
    net = nn.Sequential(
        nn.Conv2d(3, 3, 3, padding=0),
        nn.Conv2d(3, 3, 3, padding=1, groups=3),
        nn.Conv2d(3, 3, 3, padding=2, dilation=2),
        nn.Conv2d(3, 3, 2, padding=1),
    )
    use_centre_tap_convs(net)
    assert all(type(m) is nn.Conv2d for m in net)


@pytest.mark.parametrize("size", [10, 32])
def test_resnet18_features_match_torchvision(size):
    from torchvision.models import resnet18

    torch.manual_seed(0)
    ours = ResNet18Features("imagenet")
    ref = resnet18(weights=None)
    ref.fc = nn.Identity()
    # same parameter names: pretrained weights and old checkpoints load unchanged
    assert ref.load_state_dict(ours.net.state_dict()) is not None
    n_fast = sum(type(m) is CentreTapConv2d for m in ours.modules())
    assert n_fast == sum(isinstance(m, nn.Conv2d) for m in ref.modules()) == 20
    ours.eval()
    ref.eval()
    x = torch.randn(6, 3, size, size)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-5)
