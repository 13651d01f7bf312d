"""Exact explanations of a head's logits as sums over windows of tokens (pure torch, no I/O).

Max-pooled convolution filters are n-gram detectors (Jacovi et al. 2018): a CNN head's logit for
class c is  z_c = b_c + sum_f W[c, f] * pooled_f, so each filter's term can be put on tokens:

    max pooling    pooled_f = a_f(t*), the filter's activation at its best position t*: the k
                   tokens of its window centred there are the n-gram, W[c, f] * a_f(t*) its share
    mean pooling   pooled_f = (1/n) sum_t a_f(t): every position's window gets W[c, f] * a_f(t) / n
    both           both of the above (the head concatenates them)
    cnn+pool       + W_s[c] . v for the sentence vector v: with mean sentence pooling each token t
                   gets W_s[c] . h_t / n (a window of one token); [CLS] or last-token pooling is
                   one term for the whole sentence vector (`sentence`), not put on any window
    linear, mean   each token t gets W[c] . h_t / n; linear on [CLS] / last: not decomposable

Filters of one width whose best positions coincide share a window, so terms are summed per
(width, position): a head with widths 2, 3, 4 gives at most 3 n windows for n tokens. In eval
mode (dropout off) bias + sentence + the sum of all window terms is the head's logit, exactly
up to float rounding (computed in fp32).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from convtune.errors import ConvtuneError
from convtune.modeling.heads import CNNHead, CNNPoolHead, LinearHead, last_token


@dataclass
class Terms:
    """One text's logits as a sum: window w covers tokens [starts[w], ends[w]) and adds
    values[w, c] to class c's logit; `sentence` is what no window carries (cnn+pool on [CLS])."""

    starts: torch.Tensor     # (K,) long
    ends: torch.Tensor       # (K,) long, exclusive
    values: torch.Tensor     # (K, C) float32
    bias: torch.Tensor       # (C,)
    sentence: torch.Tensor   # (C,), zeros unless the head has a [CLS] / last-token sentence vector
    logits: torch.Tensor     # (C,) the head's own logits, for checking the sum

    def total(self) -> torch.Tensor:
        """(C,) bias + sentence + every window's term: equals `logits`."""
        return self.bias + self.sentence + self.values.sum(0)


def explainable(head: torch.nn.Module) -> str | None:
    """None if `head`'s logits decompose exactly over token windows, else why not (one line)."""
    if isinstance(head, LinearHead) and head.config.pooling != "mean":
        return (f"explanations are not available for a linear head on the {head.config.pooling} vector "
                "(one vector of the whole text has no n-grams); train with --head cnn or cnn+pool")
    if not isinstance(head, CNNHead | LinearHead):
        return f"explanations are not available for a {type(head).__name__}"
    return None


@torch.no_grad()
def head_terms(head: torch.nn.Module, h: torch.Tensor, mask: torch.Tensor) -> list[Terms]:
    """Each text's Terms for a batch of token states h (B, T, H) and mask (B, T); ConvtuneError
    for a head that cannot be explained exactly."""
    why = explainable(head)
    if why:
        raise ConvtuneError(why)
    h, m = h.float(), mask.to(torch.float32)
    lengths = mask.long().sum(1)
    weight, bias = head.classifier.weight.float(), head.classifier.bias.float()   # (C, F), (C,)
    windows: list[tuple[int, int, torch.Tensor]] = []  # (left offset, width, values (B, T, C))
    sentence = h.new_zeros(h.size(0), weight.size(0))
    col = 0
    if isinstance(head, CNNHead):
        windows, col = _conv_windows(head, h, m, weight)
    if isinstance(head, CNNPoolHead | LinearHead):
        pooling = head.config.sentence_pooling if isinstance(head, CNNPoolHead) else head.config.pooling
        w_s = weight[:, col:col + h.size(2)]                                    # (C, H)
        if pooling == "mean":  # (1/n) sum_t h_t: one-token windows
            per_token = torch.einsum("bth,ch->btc", h * m.unsqueeze(-1), w_s) / lengths.clamp(min=1)[:, None, None]
            windows.append((0, 1, per_token))
        else:
            v = h[:, 0] if pooling == "cls" else last_token(h, mask)
            sentence = v @ w_s.T
    logits = head.eval()(h, mask).float()
    return [_text_terms(b, windows, int(lengths[b]), bias, sentence[b], logits[b]) for b in range(h.size(0))]


def _conv_windows(head: CNNHead, h: torch.Tensor, m: torch.Tensor, weight: torch.Tensor):
    """Per conv width: (left, k, (B, T, C) window values), as `CNNHead.features` pools them."""
    x = h.transpose(1, 2) * m.unsqueeze(1)                                       # (B, H, T)
    n = m.sum(1).clamp(min=1.0)                                                 # (B,)
    out, col, filters = [], 0, head.config.num_filters
    for conv in head.convs:
        k = conv.kernel_size[0]
        left = (k - 1) // 2
        a = F.relu(conv(F.pad(x, (left, k // 2)))) * m.unsqueeze(1)             # (B, F, T)
        values = a.new_zeros(a.size(0), a.size(2), weight.size(0))              # (B, T, C)
        if head.config.pooling in ("max", "both"):
            best, pos = a.max(dim=2)                                            # (B, F)
            share = best.unsqueeze(-1) * weight[:, col:col + filters].T.unsqueeze(0)  # (B, F, C)
            values.scatter_add_(1, pos.unsqueeze(-1).expand_as(share), share)
            col += filters
        if head.config.pooling in ("mean", "both"):
            values += torch.einsum("bft,cf->btc", a, weight[:, col:col + filters]) / n[:, None, None]
            col += filters
        out.append((left, k, values))
    return out, col


def _text_terms(b: int, windows, length: int, bias, sentence, logits) -> Terms:
    starts, ends, values = [], [], []
    t = torch.arange(length)
    for left, k, v in windows:
        starts.append((t - left).clamp(min=0))
        ends.append((t - left + k).clamp(max=length))
        values.append(v[b, :length].cpu())
    return Terms(torch.cat(starts), torch.cat(ends), torch.cat(values), bias.detach().cpu(), sentence.cpu(), logits.cpu())
