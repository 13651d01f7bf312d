import pytest
import torch

from convtune.modeling.heads import (
    CNNHead,
    CNNHeadConfig,
    LinearHead,
    LinearHeadConfig,
    build_head,
)


def _pad(h, mask, extra):
    """Append `extra` garbage positions (large random values) marked as padding."""
    b, _, d = h.shape
    h2 = torch.cat([h, 100 * torch.randn(b, extra, d)], dim=1)
    m2 = torch.cat([mask, torch.zeros(b, extra, dtype=mask.dtype)], dim=1)
    return h2, m2


@pytest.mark.parametrize("pooling", ["max", "mean", "both"])
def test_cnn_head_shapes(pooling):
    head = CNNHead(16, 3, CNNHeadConfig(kernel_sizes=[2, 3, 5], num_filters=8, pooling=pooling))
    out = head(torch.randn(4, 7, 16), torch.ones(4, 7, dtype=torch.long))
    assert out.shape == (4, 3)
    assert head.out_features == 8 * 3 * (2 if pooling == "both" else 1)


@pytest.mark.parametrize("pooling", ["max", "mean", "both"])
def test_cnn_head_ignores_padding(pooling):
    torch.manual_seed(0)
    head = CNNHead(16, 3, CNNHeadConfig(kernel_sizes=[2, 3, 4], num_filters=8, pooling=pooling)).eval()
    h = torch.randn(2, 6, 16)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    h[1, 3:] = 50.0  # junk in pad positions of the shorter text
    ref = head(h, mask)
    padded = head(*_pad(h, mask, 5))
    torch.testing.assert_close(ref, padded, rtol=1e-5, atol=1e-5)
    # The short text alone, unpadded, gives the same logits as inside the padded batch.
    alone = head(h[1:, :3], mask[1:, :3])
    torch.testing.assert_close(alone, ref[1:], rtol=1e-5, atol=1e-5)


def test_cnn_head_text_shorter_than_kernel():
    head = CNNHead(8, 2, CNNHeadConfig(kernel_sizes=[5], num_filters=4)).eval()
    assert head(torch.randn(1, 1, 8), torch.ones(1, 1, dtype=torch.long)).shape == (1, 2)


@pytest.mark.parametrize("pooling", ["cls", "mean", "last"])
def test_linear_head_ignores_padding(pooling):
    torch.manual_seed(0)
    head = LinearHead(16, 2, LinearHeadConfig(pooling=pooling)).eval()
    h = torch.randn(2, 4, 16)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    ref = head(h[1:, :2], mask[1:, :2])
    torch.testing.assert_close(head(*_pad(h, mask, 3))[1:], ref)


def test_last_pooling_picks_last_real_token():
    head = LinearHead(2, 2, LinearHeadConfig(pooling="last", dropout=0.0)).eval()
    with torch.no_grad():
        head.classifier.weight.copy_(torch.eye(2))
        head.classifier.bias.zero_()
    h = torch.tensor([[[1.0, 0.0], [0.0, 7.0], [9.0, 9.0]]])
    assert head(h, torch.tensor([[1, 1, 0]])).tolist() == [[0.0, 7.0]]


def test_build_head_rejects_unknown():
    with pytest.raises(ValueError):
        build_head("rnn", 8, 2)
    with pytest.raises(ValueError):
        CNNHead(8, 2, CNNHeadConfig(pooling="median"))


@pytest.mark.parametrize("sentence_pooling", ["mean", "cls", "last"])
def test_cnn_pool_head_concatenates_and_ignores_padding(sentence_pooling):
    from convtune.modeling.heads import CNNPoolHead, CNNPoolHeadConfig

    torch.manual_seed(0)
    head = CNNPoolHead(16, 3, CNNPoolHeadConfig(kernel_sizes=[2, 3], num_filters=8,
                                                sentence_pooling=sentence_pooling)).eval()
    assert head.out_features == 2 * 8 + 16
    h = torch.randn(2, 5, 16)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    torch.testing.assert_close(head(*_pad(h, mask, 4))[1:], head(h[1:, :2], mask[1:, :2]), rtol=1e-5, atol=1e-5)


def test_scalar_mix_starts_as_mean_of_layers():
    from convtune.modeling.heads import ScalarMix

    layers = torch.randn(2, 3, 4, 8)
    torch.testing.assert_close(ScalarMix(4)(layers), layers.mean(dim=2))


def test_scalar_mix_is_the_softmax_weighted_sum_and_learns_its_weights():
    from convtune.modeling.heads import ScalarMix

    mix = ScalarMix(3)
    with torch.no_grad():
        mix.weights.copy_(torch.tensor([0.5, -1.0, 2.0]))
        mix.gamma.fill_(1.5)
    layers = torch.randn(2, 5, 3, 8)
    w = torch.softmax(mix.weights.detach(), 0)
    torch.testing.assert_close(mix(layers), 1.5 * (layers * w.view(1, 1, 3, 1)).sum(2))
    mix(layers).square().sum().backward()
    assert mix.weights.grad is not None and mix.weights.grad.abs().sum() > 0 and mix.gamma.grad is not None
