"""The exactness of head explanations: window terms + sentence + bias = the head's logit."""

from __future__ import annotations

import pytest
import torch

from convtune.errors import ConvtuneError
from convtune.modeling.explain import head_terms
from convtune.modeling.heads import build_head

EXACT = [("cnn", {"pooling": "max"}), ("cnn", {"pooling": "mean"}), ("cnn", {"pooling": "both"}),
         ("cnn", {"pooling": "max", "kernel_sizes": [1, 2, 5]}),
         ("cnn+pool", {"sentence_pooling": "mean"}), ("cnn+pool", {"sentence_pooling": "cls"}),
         ("cnn+pool", {"sentence_pooling": "last", "pooling": "both"}), ("linear", {"pooling": "mean"})]


@pytest.mark.parametrize("kind,config", EXACT)
def test_terms_add_up_to_the_logits(kind, config):
    torch.manual_seed(0)
    if kind != "linear":
        config = {"num_filters": 12, **config}
    head = build_head(kind, 16, 4, config).eval()
    h = torch.randn(3, 9, 16)
    mask = torch.tensor([[1] * 9, [1] * 5 + [0] * 4, [1, 1] + [0] * 7])
    h[1, 5:] = 40.0  # junk under the padding must not leak into any term
    for b, terms in enumerate(head_terms(head, h, mask)):
        torch.testing.assert_close(terms.logits, head(h[b:b + 1], mask[b:b + 1])[0], rtol=0, atol=1e-5)
        assert (terms.total() - terms.logits).abs().max() <= 1e-4
        n = int(mask[b].sum())
        assert (terms.starts >= 0).all() and (terms.ends <= n).all() and (terms.starts < terms.ends).all()


def test_max_pooling_puts_a_filter_on_its_best_window():
    # One filter of width 3 that fires only on token 4 of 7 (a spike in dimension 0).
    head = build_head("cnn", 2, 2, {"kernel_sizes": [3], "num_filters": 1, "pooling": "max"}).eval()
    with torch.no_grad():
        head.convs[0].weight.zero_()
        head.convs[0].weight[0, 0, 1] = 1.0     # centre tap on dimension 0
        head.convs[0].bias.zero_()
        head.classifier.weight.copy_(torch.tensor([[2.0], [-1.0]]))
        head.classifier.bias.zero_()
    h = torch.zeros(1, 7, 2)
    h[0, 4, 0] = 3.0
    (terms,) = head_terms(head, h, torch.ones(1, 7, dtype=torch.long))
    top = int(terms.values[:, 0].argmax())
    assert (int(terms.starts[top]), int(terms.ends[top])) == (3, 6)   # the window centred on token 4
    torch.testing.assert_close(terms.values[top], torch.tensor([6.0, -3.0]))
    assert float(terms.values[:, 0].abs().sum()) == pytest.approx(6.0)  # nothing elsewhere


@pytest.mark.parametrize("pooling", ["cls", "last"])
def test_linear_on_one_vector_is_refused(pooling):
    head = build_head("linear", 8, 2, {"pooling": pooling}).eval()
    with pytest.raises(ConvtuneError, match="not available for a linear head"):
        head_terms(head, torch.randn(1, 3, 8), torch.ones(1, 3, dtype=torch.long))
