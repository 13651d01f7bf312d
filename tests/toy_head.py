"""A head written outside convtune, as a user would: one module and one registry call.

    CONVTUNE_PLUGINS=tests.toy_head convtune train --head meanmax ...
"""

from dataclasses import dataclass, field

import torch
from torch import nn

from convtune.modeling.heads import masked_mean, register_head


@dataclass
class MeanMaxConfig:
    dropout: float = field(default=0.0, metadata={"search": {"low": 0.0, "high": 0.3}})  # convtune search's range


class MeanMaxHead(nn.Module):
    """The masked mean and the max of the token states, side by side, then a linear layer."""

    def __init__(self, hidden_size: int, num_classes: int, config: MeanMaxConfig | None = None):
        super().__init__()
        self.config = config or MeanMaxConfig()
        self.dropout = nn.Dropout(self.config.dropout)
        self.classifier = nn.Linear(2 * hidden_size, num_classes)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        peak = h.masked_fill(mask.unsqueeze(-1) == 0, torch.finfo(h.dtype).min).amax(dim=1)  # (B, H)
        return self.classifier(self.dropout(torch.cat([masked_mean(h, mask), peak], dim=1)))  # (B, C)


register_head("meanmax", MeanMaxHead, MeanMaxConfig)
