"""Peak bytes and page faults of one call (study/memory.py), against allocations of known size."""
import numpy as np
import pytest

from diffsuite.study.memory import how_for, minor_faults_per_call, peak_bytes

MB8 = 8 * 10**6  # 10^6 float64 entries


def test_tracemalloc_peak_sees_a_temporary_array():
    def f():
        a = np.ones(10**6)  # 8 MB, freed on return: only the peak shows it
        return float(a[0])
    peak = peak_bytes(f, "tracemalloc")
    assert MB8 <= peak < MB8 + 10**5
    assert peak_bytes(lambda: None, "tracemalloc") < 10**4


def test_torch_peak_counts_the_allocators_bytes():
    torch = pytest.importorskip("torch")

    def f():
        a = torch.ones(10**6, dtype=torch.float64)
        b = a * 2.0  # two 8 MB tensors alive at once
        return float(b[0])
    assert 2 * MB8 <= peak_bytes(f, "torch") < 2 * MB8 + 10**5


def test_torch_peak_counts_numpy_memory_behind_cpu_tensors():
    # diffsuite's torch backend allocates its per-call CPU buffers with numpy (TorchBackend.empty): torch's
    # allocator never sees them, so the torch measurement adds the call's tracemalloc peak
    torch = pytest.importorskip("torch")
    n = 100_000
    peak = peak_bytes(lambda: torch.from_numpy(np.ones(n)).sum(), "torch")
    assert 8 * n <= peak < 8 * n + 50_000  # the array's 800,000 bytes (the old measurement: about 8)


def test_faults_per_call_and_bad_input():
    # 64 MB from mmap, touched: fresh pages fault in on every call (huge pages or not: at least one)
    assert minor_faults_per_call(lambda: np.ones(2**23), calls=2) >= 1
    with pytest.raises(ValueError, match="calls must be >= 1"):
        minor_faults_per_call(lambda: None, calls=0)
    with pytest.raises(ValueError, match="how must be one of tracemalloc, torch"):
        peak_bytes(lambda: None, "rss")
    assert how_for("reverse[torch-cpu]") == "torch" and how_for("symbolic[cse]") == "tracemalloc"
