"""pytest plugin (entry point ``pytest11: diffsuite``): the ``gradcheck`` fixture.

    def test_my_loss(gradcheck):
        gradcheck(my_loss, theta, x, y)            # raises AssertionError naming the worst entries

The fixture is ``diffsuite.testing.assert_gradients_close``; options are keyword arguments
(``methods=``, ``reference=``, ``rtol=``, ``atol=``). This module imports nothing heavy at load time:
pytest loads it in every session of every project where diffsuite is installed.
"""
from __future__ import annotations

import pytest


@pytest.fixture
def gradcheck():
    """``gradcheck(f, theta, *args, **options)``: check every method's gradient of ``f`` against a reference."""
    from diffsuite.testing import assert_gradients_close
    return assert_gradients_close
