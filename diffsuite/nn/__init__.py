"""Shared neural-network definitions: activations, losses, regularisers and the MLP, all written against ``xp``."""
from .activations import (ACTIVATIONS, ELU, Activation, Identity, LeakyReLU, Maxout, ReLU, Sigmoid, Softmax, Softplus, Step,
                          Tanh, get_activation)
from .losses import LOSSES, BinaryCrossEntropy, CrossEntropy, Hinge, Loss, Quadratic, get_loss
from .mlp import MLP
from .regularizers import l1_penalty, l2_penalty, weight_penalty

__all__ = [
    "ACTIVATIONS", "Activation", "ELU", "Identity", "LeakyReLU", "Maxout", "ReLU", "Sigmoid", "Softmax", "Softplus", "Step", "Tanh",
    "get_activation", "LOSSES", "Loss", "Quadratic", "BinaryCrossEntropy", "CrossEntropy", "Hinge", "get_loss", "MLP",
    "l1_penalty", "l2_penalty", "weight_penalty",
]
