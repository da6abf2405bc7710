"""Weight penalties: L1 = sum |W|, L2 = sum W^2 over weight matrices only, never biases (the lecture's rule)."""
from __future__ import annotations

from typing import Any, Mapping


def l1_penalty(xp: Any, weights: list[Any]) -> Any:
    """sum_k sum_ij |W^k_ij|; the subgradient at 0 is 0 (abs'(0) = 0)."""
    return sum(xp.sum(xp.abs(W)) for W in weights)


def l2_penalty(xp: Any, weights: list[Any]) -> Any:
    """sum_k ||W^k||_F^2 (no 1/2: its gradient is 2 W)."""
    return sum(xp.sum(W * W) for W in weights)


def weight_penalty(xp: Any, params: Mapping[str, Any], l1: float = 0.0, l2: float = 0.0) -> Any:
    """l1 * L1 + l2 * L2 over the blocks named W*, or 0.0 when both strengths are 0."""
    weights = [v for k, v in params.items() if k.startswith("W")]
    total = 0.0
    if l1:
        total = total + l1 * l1_penalty(xp, weights)
    if l2:
        total = total + l2 * l2_penalty(xp, weights)
    return total
