import pytest
import torch

import unicr_fast as uc

# (name, extra params) of every compiled family, used to parametrise tests.
FAMILY_CASES = [
    ("gaussian", {}),
    ("laplace", {}),
    ("hyperbolic_secant", {}),
    ("general_normal", {"beta": 1.5}),
    ("general_normal", {"beta": 0.7}),
    ("uniform", {}),
    ("cauchy", {}),
    ("pareto", {"a": 3.0}),
    ("laplace_gaussian_mixture", {"weight": 0.3}),
    ("exponential_mixture", {"weight": 0.4, "beta1": 1.0, "beta2": 3.0}),
]


def family_id(case):
    name, params = case
    return name + "".join(f"-{k}{v}" for k, v in params.items())


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


def make_noise(case, sigma=0.7):
    name, params = case
    return uc.noise.make(name, sigma=sigma, **params)
