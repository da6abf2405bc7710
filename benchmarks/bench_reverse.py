"""Speed of the reverse engine against its peers, measured in one run and reported as ratios.

    python benchmarks/bench_reverse.py                 # the issue's nets, CPU (+ CUDA rows if a GPU is present)
    python benchmarks/bench_reverse.py --quick         # shorter timings (seconds, for a smoke run)
    python benchmarks/bench_reverse.py --csv out.csv   # also write one row per net
    python benchmarks/bench_reverse.py --devices cuda --large   # GPU rows up to [4096,4096,4096,10] batch 1024
    python benchmarks/bench_reverse.py --threads 1 --clock cpu  # on a busy machine: CPU time, one thread

Each row times ``theta -> (value, flat float64 gradient)`` for one MLP + loss + data set with:

- ``engine``        our tape on numpy (``get_differentiator("reverse")``)
- ``hand``          a hand-written numpy forward + backward (``benchmarks/handwritten.py``), checked
                    against the engine in the same run
- ``torch``         torch.autograd on the same device (theta in from numpy, gradient out to numpy)
- ``engine_torch``  our tape with torch tensors as the arrays (``backend="torch"``)
- ``autograd``/``jax``  HIPS autograd and ``jax.jit(value_and_grad)``, when importable
- ``hand_fwd`` and ``engine_fwd``: the loss only (plain numpy, and the engine's recording forward)

Harness: warm-up, then rounds in which every contender takes one sample of ``number`` calls (each sample
>= 10 ms), until ``min_time`` per contender has passed and at least 5 rounds exist (3 when a call is slower
than ``min_time``); each contender's median sample is reported. Interleaving makes the ratios robust to
load that changes during the run. The garbage collector is paused while a sample runs (as ``timeit``
does). CUDA rows synchronise: every method returns numpy, which waits for the device. Threads: BLAS and
torch get ``--threads`` (2 by default), set before numpy is imported; JAX (XLA) uses every core, except
with ``--threads 1``, which it honours too (XLA_FLAGS, unless already set).

On a shared machine: two BLAS threads on two busy cores wait for each other and calls take 10-100x their
quiet time; ``--threads 1 --clock cpu`` measures CPU time instead, which other processes do not inflate,
and ``--malloc steady`` pins glibc's allocator thresholds so that page faults (memory handed back to the
system and faulted in again) do not land on whichever contender the heap's history disfavours.
"""
from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short timings (about 0.05 s per measurement)")
    p.add_argument("--csv", metavar="PATH", help="write one row per net (times in seconds, ratios) to PATH")
    p.add_argument("--threads", type=int, default=2, help="BLAS and torch threads (default 2); 1 also limits JAX (XLA) to one thread")
    p.add_argument("--devices", default="auto",
                   help="comma list of cpu,cuda; 'auto' = cpu, plus cuda when a GPU is present (default)")
    p.add_argument("--large", action="store_true",
                   help="add [4096,4096,4096,10] batch 1024 in float32 and float64 (meant for a GPU)")
    p.add_argument("--min-time", type=float, default=None, help="seconds per measurement (default 0.5, quick 0.05)")
    p.add_argument("--only", default=None, help="comma list of methods to time (default: all available)")
    p.add_argument("--markdown", metavar="PATH", help="also write the machine and both tables as Markdown to PATH")
    p.add_argument("--malloc", choices=("default", "steady"), default="default",
                   help="steady: fix glibc's mmap and trim thresholds (mallopt) so that no contender pays page faults "
                        "for memory the allocator gave back to the system; which one does otherwise depends on the "
                        "heap's history (see docs/reverse.md)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: elapsed time (default); cpu: the process's CPU time, which other processes on a busy "
                        "machine do not inflate; meaningful with --threads 1 only (idle BLAS threads spin)")
    return p.parse_args(argv)


# imported (bench_before_after.py, tests): options come from BENCH_REVERSE_ARGS, e.g. "--threads 1 --clock cpu"
ARGS = parse_args() if __name__ == "__main__" else parse_args(os.environ.get("BENCH_REVERSE_ARGS", "").split())
if ARGS.malloc == "steady":
    import ctypes

    try:  # glibc: M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3 (32 MiB is the largest it accepts)
        _libc = ctypes.CDLL("libc.so.6")
        if not (_libc.mallopt(-1, 1 << 30) and _libc.mallopt(-3, 32 << 20)):
            raise OSError("mallopt refused")
    except OSError as e:
        raise SystemExit(f"--malloc steady needs glibc's mallopt: {e}")
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)
# JAX's CPU backend (XLA) ignores those and runs its own thread pool on every core. XLA has a flag for one
# thread only (no flag sets another count): with --threads 1, JAX runs on one thread too.
if ARGS.threads == 1:
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import gc  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import diffsuite as ds  # noqa: E402
from diffsuite.differentiators.reverse import Tape, TapeNamespace  # noqa: E402
from handwritten import HandwrittenMLP  # noqa: E402

try:
    import torch
except ImportError:  # the torch rows are left out
    torch = None


@dataclass(frozen=True)
class Case:
    layers: tuple
    batch: int
    activation: str
    output_activation: str
    loss: str
    dtype: str = "float64"
    size: str = "large"  # "small" or "large": which targets apply

    @property
    def label(self) -> str:
        net = "[" + ",".join(map(str, self.layers)) + "]"
        return f"{net} b{self.batch} {self.activation}" + ("" if self.dtype == "float64" else " f32")


CASES = [
    Case((3, 2, 1), 1, "sigmoid", "sigmoid", "quadratic", size="small"),
    Case((784, 32, 10), 16, "sigmoid", "identity", "cross_entropy", size="small"),
    Case((784, 128, 128, 10), 64, "relu", "identity", "cross_entropy"),
    Case((784, 512, 512, 10), 256, "relu", "identity", "cross_entropy"),
    Case((784, 512, 512, 10), 256, "relu", "identity", "cross_entropy", dtype="float32"),
]
LARGE = [Case((4096, 4096, 4096, 10), 1024, "relu", "identity", "cross_entropy", dtype=dt, size="gpu")
         for dt in ("float32", "float64")]

TARGETS = {  # (ratio column, which cases, bound): the issues' targets
    "engine/hand": {"small": 2.0, "large": 1.15},
    "engine/hand_fwd": {"large": 3.0},
    "engine_torch/torch": {"large": 1.2},
    "engine_torch_cuda/torch_cuda": {"large": 1.2, "gpu": 1.2},
}


# ----- the harness -----
def measure_all(fns: dict, min_time: float, clock=time.perf_counter) -> dict:
    """Median seconds per call of each ``fn()``, sampled in interleaved rounds (see the module docstring).

    Round-robin sampling makes the ratios robust to load that changes during the run (a shared
    machine): every contender sees the same conditions within a round.
    """
    number, slow = {}, False
    for name, fn in fns.items():  # warm-up and calibration
        t0, n = time.perf_counter(), 0
        while n < 2 or time.perf_counter() - t0 < 0.2 * min_time:
            fn()
            n += 1
        per_call = (time.perf_counter() - t0) / n
        number[name] = max(1, int(0.01 / per_call))
        slow |= per_call > min_time
    samples = {name: [] for name in fns}
    names, start, rounds = list(fns), time.perf_counter(), 0
    while rounds < (3 if slow else 5) or time.perf_counter() - start < min_time * len(fns):
        order = names[rounds % len(names):] + names[:rounds % len(names)]
        for name in order:
            fn, k = fns[name], number[name]
            gc.collect()
            gc.disable()
            try:
                t = clock()
                for _ in range(k):
                    fn()
                samples[name].append((clock() - t) / k)
            finally:
                gc.enable()
        rounds += 1
    return {name: statistics.median(s) for name, s in samples.items()}


# ----- the contenders: each returns a function theta -> (value, float64 grad) or theta -> value -----
def make_problem(case: Case, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(case.batch, case.layers[0]))
    if case.loss == "cross_entropy":
        T = rng.integers(0, case.layers[-1], size=case.batch)
    else:
        T = rng.uniform(0.0, 1.0, size=(case.batch, case.layers[-1]))
    model = ds.MLP(layers=case.layers, activation=case.activation, output_activation=case.output_activation)
    obj = ds.Objective(model, loss=case.loss, inputs=X, targets=T)
    return obj, model.init(seed), X, T


def engine_forward(obj, backend="numpy", device="cpu", dtype="float64"):
    """The engine's recording forward pass alone (the tape is built, not walked back)."""
    d = ds.get_differentiator("reverse", backend=backend, device=device, dtype=dtype)
    B = d.load()
    inputs, targets = (B.asarray(a) for a in obj.data(np.float64))
    layout = list(obj.model.layout.items())

    def value(theta):
        if not math.isfinite(theta.sum()):  # the same check as the engine's fast path
            theta = obj.check_theta(theta)
        flat = B.asarray(theta)
        tape = Tape(B)
        params = {name: tape.input(B.reshape(flat[a:b], shape)) for name, (a, b, shape) in layout}
        out = obj.evaluate(TapeNamespace(tape), params, inputs, targets)
        return float(B.to_numpy(out.value))

    return value


def torch_autograd(case: Case, obj, X, T, device: str):
    """torch.autograd on ``device``: theta arrives as numpy and the gradient leaves as float64 numpy."""
    dt = getattr(torch, case.dtype)
    Xt = torch.as_tensor(X, dtype=dt, device=device)
    Tt = (torch.as_tensor(T, dtype=torch.int64, device=device) if case.loss == "cross_entropy"
          else torch.as_tensor(T, dtype=dt, device=device).reshape(case.batch, -1))
    layout = list(obj.model.layout.values())
    act = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "identity": lambda z: z}
    acts = [act[case.activation]] * (len(layout) // 2 - 1) + [act[case.output_activation]]

    def value_and_grad(theta):
        # one transfer in; each block a leaf of its own (a view of it): torch's gradient of slices of one
        # flat leaf would build a full-size zero tensor per block, and the peer should be torch at its best
        t = torch.as_tensor(theta, device=device).to(dt)
        p = [t[a:b].view(shape).detach().requires_grad_(True) for a, b, shape in layout]
        h = Xt
        for k, f in enumerate(acts):
            h = f(torch.addmm(p[2 * k + 1], h, p[2 * k]))
        if case.loss == "cross_entropy":
            loss = torch.nn.functional.cross_entropy(h, Tt)
        else:
            loss = 0.5 * ((h - Tt) ** 2).sum() / case.batch
        loss.backward()
        grad = torch.cat([q.grad.reshape(-1) for q in p])
        return loss.item(), grad.to("cpu", torch.float64).numpy()

    return value_and_grad


def hips_autograd(case: Case, obj, X, T):
    import autograd
    import autograd.numpy as anp

    dt = np.dtype(case.dtype)
    Xd = X.astype(dt)
    layout = list(obj.model.layout.values())
    act = {"relu": lambda z: anp.maximum(z, 0.0), "sigmoid": lambda z: 1.0 / (1.0 + anp.exp(-z)),
           "tanh": anp.tanh, "identity": lambda z: z}
    acts = [act[case.activation]] * (len(layout) // 2 - 1) + [act[case.output_activation]]
    onehot = np.eye(case.layers[-1], dtype=dt)[T] if case.loss == "cross_entropy" else None

    def loss(theta):
        h = Xd
        for k, f in enumerate(acts):
            (a, b, sw), (c, d, _) = layout[2 * k], layout[2 * k + 1]
            h = f(anp.dot(h, anp.reshape(theta[a:b], sw)) + theta[c:d])
        if case.loss == "cross_entropy":
            m = anp.max(h, axis=1, keepdims=True)
            lse = anp.log(anp.sum(anp.exp(h - m), axis=1)) + m[:, 0]
            return (anp.sum(lse) - anp.sum(onehot * h)) / case.batch
        return 0.5 * anp.sum((h - T.reshape(case.batch, -1)) ** 2) / case.batch

    vg = autograd.value_and_grad(loss)
    return lambda theta: (lambda v, g: (float(v), np.asarray(g, dtype=np.float64)))(*vg(theta.astype(dt)))


def jax_jit(case: Case, obj, X, T):
    import jax
    import jax.numpy as jnp

    if case.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    dt = jnp.dtype(case.dtype)
    Xd, layout = jnp.asarray(X, dtype=dt), list(obj.model.layout.values())
    act = {"relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "identity": lambda z: z}
    acts = [act[case.activation]] * (len(layout) // 2 - 1) + [act[case.output_activation]]
    Td = jnp.asarray(T)

    def loss(theta):
        h = Xd
        for k, f in enumerate(acts):
            (a, b, sw), (c, d, _) = layout[2 * k], layout[2 * k + 1]
            h = f(h @ theta[a:b].reshape(sw) + theta[c:d])
        if case.loss == "cross_entropy":
            return jnp.mean(jax.nn.logsumexp(h, axis=1) - jnp.take_along_axis(h, Td[:, None], axis=1)[:, 0])
        return 0.5 * jnp.sum((h - Td.reshape(case.batch, -1)) ** 2) / case.batch

    vg = jax.jit(jax.value_and_grad(loss))
    return lambda theta: (lambda v, g: (float(v), np.asarray(g, dtype=np.float64)))(*vg(jnp.asarray(theta, dt)))


def engine(dtype, backend="numpy", device="cpu"):
    d = ds.get_differentiator("reverse", backend=backend, device=device, dtype=dtype)
    return d, d.value_and_grad


def contenders(case: Case, devices: list[str], only: set | None):
    """name -> (callable(theta), kind) for everything available on this machine."""
    obj, theta, X, T = make_problem(case)
    hand = HandwrittenMLP(case.layers, case.activation, case.output_activation, case.loss, X, T, case.dtype)
    out = {}
    if "cpu" in devices and case.size != "gpu":
        out["hand"] = (hand.value_and_grad, "grad")
        out["hand_fwd"] = (hand.value, "value")
        out["engine"] = (engine(case.dtype)[1](obj), "grad")
        out["engine_fwd"] = (engine_forward(obj, dtype=case.dtype), "value")
        for name, make in (("autograd", hips_autograd), ("jax", jax_jit)):
            try:
                out[name] = (make(case, obj, X, T), "grad")
            except ImportError:
                pass
    if torch is not None:
        for dev in devices:
            sfx = "" if dev == "cpu" else "_cuda"
            out["torch" + sfx] = (torch_autograd(case, obj, X, T, dev), "grad")
            try:
                out["engine_torch" + sfx] = (engine(case.dtype, "torch", dev)[1](obj), "grad")
            except ImportError as e:  # no torch backend yet, or no CUDA: say so once
                print(f"  (engine_torch{sfx} skipped: {e})", file=sys.stderr)
    if only:
        out = {k: v for k, v in out.items() if k in only or k in ("hand",)}
    return obj, theta, out


def check(case, theta, fns) -> float:
    """Largest relative gradient difference of every contender from the reference (hand, else torch)."""
    ref_name = "hand" if "hand" in fns else next(k for k, (f, kind) in fns.items() if kind == "grad")
    v0, g0 = fns[ref_name][0](theta)
    # float32: about n * eps per dot product of length n, through 2 * depth + 1 stages, times 10 for safety
    # (the same a-priori bound as tests/differentiators/reverse/test_torch_backend.py)
    depth = len(case.layers) - 1
    tol = 1e-10 if case.dtype == "float64" else 10 * (2 * depth + 1) * max(max(case.layers), case.batch) * 1.2e-7
    worst = 0.0
    for name, (f, kind) in fns.items():
        if kind != "grad" or name == ref_name:
            continue
        v, g = f(theta)
        err = float(np.max(np.abs(g - g0)) / max(np.max(np.abs(g0)), 1e-300))
        worst = max(worst, err)
        if err > tol or abs(v - v0) > tol * max(1.0, abs(v0)):
            raise SystemExit(f"{case.label}: {name} disagrees with {ref_name}: relative gradient error {err:.2e}, "
                             f"values {v!r} vs {v0!r} (tolerance {tol:g}). The benchmark refuses to time wrong code.")
    return worst


RATIOS = [  # (column, numerator, denominator)
    ("engine/hand", "engine", "hand"),
    ("torch/hand", "torch", "hand"),
    ("engine_torch/torch", "engine_torch", "torch"),
    ("engine/hand_fwd", "engine", "hand_fwd"),
    ("hand/hand_fwd", "hand", "hand_fwd"),
    ("engine/engine_fwd", "engine", "engine_fwd"),
    ("autograd/hand", "autograd", "hand"),
    ("jax/hand", "jax", "hand"),
    ("engine_torch_cuda/torch_cuda", "engine_torch_cuda", "torch_cuda"),
    ("gpu_speedup_engine", "engine_torch", "engine_torch_cuda"),
    ("gpu_speedup_torch", "torch", "torch_cuda"),
]


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    info = {"cpu": cpu, "cores": os.cpu_count(), "threads": ARGS.threads, "clock": ARGS.clock, "malloc": ARGS.malloc,
            "load_1min": round(load, 2),
            "python": platform.python_version(),
            "numpy": np.__version__, "torch": getattr(torch, "__version__", "absent"), "gpu": "none"}
    if torch is not None and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    from importlib.metadata import PackageNotFoundError, version
    for peer in ("jax", "autograd"):
        try:
            info[peer] = version(peer)
        except PackageNotFoundError:
            info[peer] = "absent"
    return info


def run(cases, devices, min_time, only=None):
    rows = []
    for case in cases:
        print(f"timing {case.label} ...", file=sys.stderr, flush=True)
        obj, theta, fns = contenders(case, devices, only)
        worst = check(case, theta, fns)
        row = {"net": case.label, "layers": "x".join(map(str, case.layers)), "batch": case.batch,
               "activation": case.activation, "loss": case.loss, "dtype": case.dtype, "size": case.size,
               "n_params": obj.n_params, "max_rel_grad_diff": worst}
        clock = time.process_time if ARGS.clock == "cpu" else time.perf_counter
        row.update(measure_all({name: (lambda f=f: f(theta)) for name, (f, _) in fns.items()}, min_time, clock))
        for col, a, b in RATIOS:
            if a in row and b in row:
                row[col] = row[a] / row[b]
        rows.append(row)
    return rows


def tables(rows):
    """(title, header, body rows) for the times table and the ratios table; body cells are strings."""
    methods = [m for m in ("hand", "hand_fwd", "engine", "engine_fwd", "torch", "engine_torch", "autograd", "jax",
                           "torch_cuda", "engine_torch_cuda") if any(m in r for r in rows)]
    times = [[r["net"]] + [f"{r[m] * 1e3:.3f}" if m in r else "" for m in methods] for r in rows]
    cols = [c for c, _, _ in RATIOS if any(c in r for r in rows)]
    ratios = []
    for r in rows:
        cells = [r["net"]]
        for c in cols:
            bound = TARGETS.get(c, {}).get(r["size"])
            if c not in r:
                cells.append("")
            elif bound is None:
                cells.append(f"{r[c]:.2f}")
            else:
                cells.append(f"{r[c]:.2f} {'ok' if r[c] <= bound else 'MISSED'} (<={bound})")
        ratios.append(cells)
    return [("median time per call (ms)", ["net"] + methods, times),
            ("ratios (targets in brackets: ok / MISSED)", ["net"] + cols, ratios)]


def describe_machine(info) -> str:
    return (f"{info['cpu']} ({info['cores']} cores), {info['threads']} threads, {info['clock']} clock, "
            f"{info['malloc']} malloc, GPU {info['gpu']}; "
            f"numpy {info['numpy']}, torch {info['torch']}, jax {info.get('jax', 'absent')}, "
            f"HIPS autograd {info.get('autograd', 'absent')}, Python {info['python']}; "
            f"1-min load average at the start {info['load_1min']}")


def report(rows, info, console=None):
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=max(160, Console().width))
    console.print(f"[bold]machine[/]: {describe_machine(info)}")
    if info["load_1min"] > info["cores"]:
        console.print(f"[red]warning[/]: load average {info['load_1min']} exceeds {info['cores']} cores: other work "
                      "competes for the CPU; absolute times are inflated (ratios, sampled in interleaved rounds, "
                      "less so)")
    for title, header, body in tables(rows):
        t = Table(title=title)
        for i, h in enumerate(header):
            t.add_column(h, justify="left" if i == 0 else "right")
        for cells in body:
            t.add_row(*cells)
        console.print(t)


def markdown(rows, info) -> str:
    out = [f"Machine: {describe_machine(info)}.", ""]
    for title, header, body in tables(rows):
        out += [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(cells) + " |" for cells in body]
        out.append("")
    return "\n".join(out)


def main():
    only = set(ARGS.only.split(",")) if ARGS.only else None
    cuda = torch is not None and torch.cuda.is_available()
    if ARGS.devices == "auto":
        devices = ["cpu"] + (["cuda"] if cuda else [])
    else:
        devices = [d.strip() for d in ARGS.devices.split(",")]
        if "cuda" in devices and not cuda:
            raise SystemExit("--devices cuda needs torch with a CUDA GPU; "
                             + ("torch is not installed" if torch is None else "torch.cuda.is_available() is False"))
    if torch is not None:
        torch.set_num_threads(ARGS.threads)
    min_time = ARGS.min_time or (0.05 if ARGS.quick else 0.5)
    cases = CASES + (LARGE if ARGS.large else [])
    info = machine()
    rows = run(cases, devices, min_time, only)
    report(rows, info)
    if ARGS.markdown:
        Path(ARGS.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(ARGS.markdown).write_text(markdown(rows, info))
        print(f"wrote {ARGS.markdown}", file=sys.stderr)
    if ARGS.csv:
        import pandas as pd

        df = pd.DataFrame(rows)
        for k, v in info.items():
            df[k] = v
        Path(ARGS.csv).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(ARGS.csv, index=False)
        print(f"wrote {ARGS.csv}", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
