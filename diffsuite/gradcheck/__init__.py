"""Gradient checks for users' test suites and the CI accuracy baseline; the public face is ``diffsuite.testing``.

``tolerances`` (default rtol by method and dtype), ``methods`` (which differentiators run and how a
problem is flattened to named entries), ``report`` (the result table and the failure message),
``baseline`` (the accuracy grid behind ``diffsuite check`` and its stored baseline).
"""
