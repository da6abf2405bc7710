"""The README's Python examples run as written (in order, in one namespace), so the front page cannot rot."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    # the pytest-fixture example only defines a test; CUDA needs a GPU
    return [b for b in blocks if "def test_" not in b and 'device="cuda"' not in b]


def test_readme_python_examples_run(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    blocks = python_blocks()
    assert len(blocks) >= 4
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own documentation
    assert namespace["g"]["W"].shape == (3, 2)
