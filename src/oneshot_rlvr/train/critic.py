"""The PPO critic: a copy of the policy's transformer with a scalar value head.

Values are aligned like `token_logprobs`: entry t is V(prefix before token t), read from the hidden
state at t - 1, so policy log-probs, values and rewards of a response token share one index.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Critic(nn.Module):
    def __init__(self, lm: Any):
        super().__init__()
        self.body = lm.get_decoder()
        hidden = int(lm.config.hidden_size)
        self.head = nn.Linear(hidden, 1)
        # A zero head starts every value at 0: the first advantages are the rewards themselves.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.head.to(next(self.body.parameters()).device)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) values, 0 in column 0 (nothing predicts the first token)."""
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                        use_cache=False)
        values = self.head(out.last_hidden_state[:, :-1].to(self.head.weight.dtype)).squeeze(-1).float()
        return torch.cat([values.new_zeros(values.shape[0], 1), values], dim=1)


def outcome_token_rewards(rewards: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """(N,) sequence rewards -> (N, T) token rewards placed on each row's last response token."""
    positions = torch.arange(response_mask.shape[1]).expand_as(response_mask)
    last = torch.where(response_mask.bool(), positions, torch.full_like(positions, -1)).max(dim=1).values
    out = torch.zeros(response_mask.shape, dtype=torch.float32)
    has = last >= 0
    out[has.nonzero().squeeze(-1), last[has]] = rewards[has].float()
    return out
