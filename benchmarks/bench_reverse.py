"""Speed and memory of the reverse engine against its peers, measured as a user runs them, reported as ratios.

    python benchmarks/bench_reverse.py                 # the issue's nets, CPU (+ CUDA rows if a GPU is present)
    python benchmarks/bench_reverse.py --quick         # shorter timings (a smoke run)
    python benchmarks/bench_reverse.py --csv out.csv --markdown out.md
    python benchmarks/bench_reverse.py --devices cuda --large   # GPU rows up to [4096,4096,4096,10] batch 1024
    python benchmarks/bench_reverse.py --clock cpu --threads 1  # quieter on a busy machine (not the user's setting)

Each row times ``theta -> (value, flat float64 gradient)`` for one MLP + loss + data set with:

- ``engine``        our tape on numpy (``get_differentiator("reverse")``)
- ``hand``          a hand-written numpy forward + backward (``benchmarks/handwritten.py``): on float64 nets the
                    reference every other contender's value and gradient must match (1e-10 relative) before
                    anything is timed; on float32 nets every contender, ``hand`` included, is compared with the
                    same code run in float64 at the same theta and data (``grad_tolerance``: float32 rounding)
- ``hand2``         the same code again, in processes of its own: the control. hand2/hand would be 1.00 on a
                    quiet machine; its distance from 1.00 is what the run can resolve (warned above 5%)
- ``torch``         torch.autograd on the same device (theta in from numpy, gradient out to numpy)
- ``engine_torch``  our tape with torch tensors as the arrays (``backend="torch"``)
- ``autograd``/``jax``  HIPS autograd and ``jax.jit(value_and_grad)``, when importable (the ``bench`` extra)
- ``hand_fwd`` and ``engine_fwd``: the loss only (plain numpy, no gradient of any kind; and the engine's recording
                    forward), compared as ``engine_fwd/hand_fwd``

Conditions, by default those of a user: every contender runs in processes of its own (started fresh for
each net, so no contender's heap history bills another; three per contender, ``--processes``, sampled in
turn, so that no one process's circumstances decide a contender's figure), with the
allocator and thread counts as they come, timed by the wall clock. The parent process interleaves the samples:
in each round every contender takes one sample of ``number`` calls while the others wait, so load that changes during the run hits all
alike; a 0.3 s pause before each sample (``--settle``) lets the previous contender's BLAS and OpenMP threads,
which spin for a while after their last call, go idle first. Per contender: min / median / max seconds per call over the rounds; the peak memory of one call
(numpy contenders: ``tracemalloc``, which sees every numpy array; torch contenders: torch's allocator
statistics as its profiler reports them, ``profile_memory=True``, the highest "Total Allocated" during the
call above its level at the start, plus the call's ``tracemalloc`` peak, which sees the numpy memory behind
CPU tensors; JAX: not measured); minor page faults per call (``getrusage``, median over
the rounds). ``--clock cpu --threads 1`` measures process CPU time on one thread instead, which other
processes on a busy machine do not inflate; ``--malloc steady`` pins glibc's allocator thresholds.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short timings (3 rounds, about 0.05 s per contender)")
    p.add_argument("--csv", metavar="PATH", help="write one row per (net, contender) to PATH")
    p.add_argument("--markdown", metavar="PATH", help="also write the machine, the legend and the tables to PATH")
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS, torch (and with 1, JAX) threads; default: each library's own default, as a user gets")
    p.add_argument("--devices", default="auto",
                   help="comma list of cpu,cuda; 'auto' = cpu, plus cuda when a GPU is present (default)")
    p.add_argument("--large", action="store_true",
                   help="add [4096,4096,4096,10] batch 1024 in float32 and float64 (meant for a GPU)")
    p.add_argument("--rounds", type=int, default=None, help="samples per contender (default 9, quick 3)")
    p.add_argument("--processes", type=int, default=3, metavar="K",
                   help="worker processes per contender (default 3), sampled in turn; medians pool their samples, so "
                        "that no one process's circumstances (its memory, its threads' placement) decide a ratio alone")
    p.add_argument("--min-time", type=float, default=None,
                   help="seconds of calls per contender, over all rounds (default 1.0, quick 0.05)")
    p.add_argument("--only", default=None, help="comma list of contenders to time (hand and its control hand2 are always timed)")
    p.add_argument("--nets", default=None, help="comma list of row numbers to run (0-based, in the table's order)")
    p.add_argument("--malloc", choices=("default", "steady"), default="default",
                   help="steady: fix glibc's mmap and trim thresholds (mallopt), so that no contender pays page "
                        "faults for memory the allocator gave back to the system (not the user's setting)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: elapsed time (default); cpu: the process's CPU time, which other processes on a busy "
                        "machine do not inflate; meaningful with --threads 1 only (idle BLAS threads spin)")
    p.add_argument("--settle", type=float, default=0.3, metavar="SECONDS",
                   help="pause between two contenders' samples (default 0.3): a BLAS or OpenMP pool keeps spinning for "
                        "a while after its last call, and would take the cores of the contender sampled next, which a "
                        "user's single process never meets; 0 samples back to back")
    p.add_argument("--instructions", action="store_true",
                   help="also count instructions per call of each CPU contender under valgrind's cachegrind (one BLAS "
                        "thread; 30 calls minus 10): a figure no load changes, but blind to memory stalls, so a row's "
                        "instruction ratio can sit below its time ratio. Minutes per net")
    p.add_argument("--worker", nargs=2, metavar=("CASE", "CONTENDER"), help=argparse.SUPPRESS)
    p.add_argument("--calls", type=int, default=None, help=argparse.SUPPRESS)  # worker: make N calls and exit
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
if ARGS.threads is not None:  # set before numpy (and its BLAS) is imported
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)
    # JAX's CPU backend (XLA) ignores those and has a flag for one thread only
    if ARGS.threads == 1:
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import gc  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import diffsuite as ds  # noqa: E402
from diffsuite.study.memory import peak_bytes  # noqa: E402
from handwritten import HandwrittenMLP  # noqa: E402
from harness import JsonWorker, instructions_per_call  # noqa: E402


@dataclass(frozen=True)
class Case:
    layers: tuple
    batch: int
    activation: str
    output_activation: str
    loss: str
    dtype: str = "float64"
    size: str = "large"  # "small", "large" or "gpu"

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
CPU_CONTENDERS = ("hand", "hand2", "hand_fwd", "engine", "engine_fwd", "torch", "engine_torch", "autograd", "jax")
CUDA_CONTENDERS = ("torch_cuda", "engine_torch_cuda")
LEGEND = [  # (column, meaning): printed with every table
    ("hand", "hand-written numpy forward + backward (benchmarks/handwritten.py): the baseline"),
    ("hand2", "the same hand-written code again, in processes of its own: hand2/hand is what this run can resolve "
              "(identical code; any distance from 1.00 is the machine's noise, and so is as much of every other ratio)"),
    ("hand_fwd / engine_fwd", "the loss alone: plain numpy / the engine's recording forward pass"),
    ("engine", "our reverse engine on numpy"),
    ("torch / engine_torch", "torch.autograd / our engine with torch tensors as its arrays (_cuda: on the GPU)"),
    ("autograd / jax", "HIPS autograd / jax.jit(jax.value_and_grad(loss))"),
    ("ms min / median / max", "milliseconds per call over the rounds (each round: one sample of several calls, "
                              "taken by the contender's processes in turn)"),
    ("ms per process", "the median of each of the contender's processes: how far one process alone could be off"),
    ("peak MB", "the highest memory in use during one call above its level before the call (tracemalloc for "
                "numpy contenders; for torch ones, torch's allocator statistics via its profiler plus tracemalloc's peak, "
                "for numpy memory behind CPU tensors; jax: -)"),
    ("faults", "minor page faults per call (getrusage), median over the rounds: memory the allocator handed back "
               "to the system and touched again"),
    ("a/b", "time: the median over the rounds of a's sample over b's sample in the same round, the middle half of "
            "those ratios in brackets (a pair is taken seconds apart, so the machine's slow phases divide out; the "
            "CSV also has the ratio of the two medians, a/b_of_medians); peak: a's peak memory over b's"),
]


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


def engine(obj, dtype, backend="numpy", device="cpu"):
    from diffsuite.differentiators.reverse import Reverse

    vg = Reverse(backend=backend, device=device, dtype=dtype).value_and_grad(obj)
    return lambda theta: (lambda r: (r.value, r.grad))(vg(theta))


def engine_forward(obj, dtype):
    """The engine's recording forward pass alone (the tape is built, not walked back)."""
    from diffsuite.differentiators.reverse import Reverse, Tape, TapeNamespace

    B = Reverse(dtype=dtype).load()
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
    import torch

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


def build(case: Case, name: str):
    """(function of theta, kind, memory method) for contender ``name``; ImportError when it is unavailable."""
    obj, theta, X, T = make_problem(case)
    hand = HandwrittenMLP(case.layers, case.activation, case.output_activation, case.loss, X, T, case.dtype)
    device = "cuda" if name.endswith("_cuda") else "cpu"
    if name in ("hand", "hand2"):
        return hand.value_and_grad, "grad", "tracemalloc", theta
    if name == "hand_fwd":
        return hand.value, "value", "tracemalloc", theta
    if name == "engine":
        return engine(obj, case.dtype), "grad", "tracemalloc", theta
    if name == "engine_fwd":
        return engine_forward(obj, case.dtype), "value", "tracemalloc", theta
    if name == "autograd":
        return hips_autograd(case, obj, X, T), "grad", "tracemalloc", theta
    if name == "jax":
        return jax_jit(case, obj, X, T), "grad", None, theta
    if name.startswith("torch"):
        return torch_autograd(case, obj, X, T, device), "grad", "torch", theta
    if name.startswith("engine_torch"):
        return engine(obj, case.dtype, "torch", device), "grad", "torch", theta
    raise ValueError(f"unknown contender {name!r}; known: {', '.join(CPU_CONTENDERS + CUDA_CONTENDERS)}")


# ----- the worker: one contender in a process of its own, driven over stdin/stdout -----
def worker(case_json: str, name: str):
    case = Case(**{k: tuple(v) if k == "layers" else v for k, v in json.loads(case_json).items()})
    out = sys.stdout
    sys.stdout = sys.stderr  # the protocol owns stdout; anything a library prints goes to stderr

    def send(msg):
        out.write(json.dumps(msg) + "\n")
        out.flush()

    try:
        if ARGS.threads is not None and name.startswith(("torch", "engine_torch")):
            import torch
            torch.set_num_threads(ARGS.threads)
        fn, kind, mem_method, theta = build(case, name)
        fn(theta)
    except ImportError as e:
        send({"unavailable": str(e)})
        return
    if ARGS.calls is not None:  # --instructions: the calls counted, nothing else
        for _ in range(ARGS.calls):
            fn(theta)
        return
    clock = time.process_time if ARGS.clock == "cpu" else time.perf_counter
    send({"ready": True, "kind": kind})
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "result":
            res = fn(theta)
            value, grad = (res, None) if kind == "value" else res
            if grad is not None:
                np.save(cmd["path"], np.asarray(grad, dtype=np.float64))
            send({"value": float(value)})
        elif cmd["op"] == "calibrate":  # calls per sample, so that a sample lasts at least cmd["sample"] s
            # The first calls of a process are no measure of the rest (the engine's first records its plan; every
            # contender's first touch pages and starts thread pools): warm up, then time warm calls. (Calibrated
            # on the first calls, samples had come out at 2 calls instead of about 60 and mostly timed jitter.)
            for phase in (0.1, 0.3 * cmd["sample"]):
                t0, n = time.perf_counter(), 0
                while n < 3 or time.perf_counter() - t0 < phase:
                    fn(theta)
                    n += 1
            send({"number": max(1, math.ceil(cmd["sample"] / ((time.perf_counter() - t0) / n)))})
        elif cmd["op"] == "sample":
            n = cmd["number"]
            # Warm up first (untimed): after the settle pause this process's caches are cold, its BLAS threads
            # asleep and its vCPU possibly halted. A user's loop calls back to back and never pays that; timed,
            # it added a fixed cost to every sample, which weighed more on whichever contender had calibrated
            # fewer calls per sample, so that identical code differed by 1.5x between contenders (measured).
            t0 = time.perf_counter()
            for _ in range(max(2, n // 5)):
                fn(theta)
                if time.perf_counter() - t0 > 0.2 * cmd.get("sample", 1.0):
                    break
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t = clock()
            for _ in range(n):
                fn(theta)
            dt = clock() - t
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
            send({"seconds": dt / n, "faults": faults / n})
        elif cmd["op"] == "memory":
            peak = None if mem_method is None else peak_bytes(lambda: fn(theta), mem_method)
            send({"peak_bytes": peak, "method": mem_method})
        elif cmd["op"] == "quit":
            return


class Contender(JsonWorker):
    """The parent's handle on one worker process."""

    def __init__(self, case: Case, name: str, env: dict | None = None, label: str | None = None):
        argv = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(asdict(case)), name,
                "--clock", ARGS.clock, "--malloc", ARGS.malloc]
        if ARGS.threads is not None:
            argv += ["--threads", str(ARGS.threads)]
        super().__init__(argv, label or name, env, quit={"op": "quit"})


EPS32 = float(np.finfo(np.float32).eps)  # 1.19e-7


def grad_tolerance(case: Case) -> float:
    """Largest relative gradient difference (of max |reference gradient|) a contender may show on ``case``.

    float64: 1e-10, against the hand-written code (``hand``) in the same run.
    float32: against a float64 reference (``reference_result``), so that the tolerance measures float32 rounding
    and not also the reference's. Each gradient entry is a few chained dot products, the longest of length
    ``n = max(fan-in, batch)`` (the weight gradients sum over the batch), through ``depth`` layers; rounding errors of
    random sign grow like ``eps32 * sqrt(depth * n)`` (5.8e-6 on [784,512,512,10] b256). The tolerance is 4x that
    (2.3e-5 there): measured there, every float32 contender (hand, engine, torch, engine_torch, autograd) lands at
    3.4e-7 to 4.0e-7 of max |g| from float64, 58x inside it, while the same code in float16 (torch.autograd and
    the hand-written code alike) lands at 7.8e-3, 340x outside. (The former a-priori bound,
    ``10 * (2 depth + 1) * n * eps32``, was 6.6e-3 there: float16 nearly passed.)
    """
    if case.dtype == "float64":
        return 1e-10
    n = max(max(case.layers[:-1]), case.batch)
    return 4 * EPS32 * math.sqrt((len(case.layers) - 1) * n)


def reference_result(case: Case) -> tuple | None:
    """For a float32 ``case``: the hand-written code's (value, gradient) in float64 at the same theta and data, the
    reference every float32 contender is compared with; None for float64 cases (their reference is ``hand``)."""
    if case.dtype == "float64":
        return None
    obj, theta, X, T = make_problem(case)
    hand = HandwrittenMLP(case.layers, case.activation, case.output_activation, case.loss, X, T, "float64")
    return hand.value_and_grad(theta)


def check_results(case: Case, results: dict, reference: tuple | None = None) -> float:
    """Largest relative gradient difference of every contender's ``(value, gradient or None)`` from the reference:
    ``reference`` (a float64 ``(value, gradient)``, for float32 cases), else ``hand``'s result (else the first
    contender with a gradient). SystemExit naming the contender when one is off by more than ``grad_tolerance``."""
    if reference is not None:
        ref, (v0, g0) = "the float64 reference (hand-written code in float64)", reference
        others = results
    else:
        ref = "hand" if "hand" in results else next(n for n, (_, g) in results.items() if g is not None)
        v0, g0 = results[ref]
        others = {n: r for n, r in results.items() if n != ref}
    tol = grad_tolerance(case)
    worst = 0.0
    for name, (v, g) in others.items():
        if not abs(v - v0) <= tol * max(1.0, abs(v0)):
            raise SystemExit(f"{case.label}: {name}'s value {v!r} differs from {ref}'s {v0!r} (tolerance {tol:g}). "
                             "The benchmark refuses to time wrong code.")
        if g is None:
            continue
        g = np.asarray(g, dtype=np.float64)
        err = float(np.max(np.abs(g - g0)) / max(np.max(np.abs(g0)), 1e-300)) if g.shape == g0.shape else math.inf
        if not err <= tol:  # (NaN fails too)
            raise SystemExit(f"{case.label}: {name} disagrees with {ref}: relative gradient error {err:.2e} "
                             f"(tolerance {tol:.2g}). The benchmark refuses to time wrong code.")
        worst = max(worst, err)
    return worst


def check(case: Case, workers: dict, tmp: Path) -> float:
    """Each worker's value and gradient, checked by ``check_results``; the largest relative gradient difference."""
    results = {}
    for name, w in workers.items():
        path = tmp / f"{name}.npy"
        value = w.ask(op="result", path=str(path))["value"]
        results[name] = (value, np.load(path) if path.exists() else None)
    return check_results(case, results, reference_result(case))


def measure_case(case: Case, names: list, rounds: int, min_time: float, envs: dict | None = None,
                 settle: float = 0.0, processes: int = 1) -> dict:
    """Start ``processes`` workers per contender, check their gradients agree, sample them in interleaved rounds.

    Returns ``{name: {"seconds": [...], "faults": [...], "process_medians": [...], "peak_bytes", "memory_method"}}``
    and ``"load"``: the 1-minute load average before and after. ``envs``: extra environment per contender (label ->
    (name, env)). ``settle``: seconds to wait before each sample, so that the previous contender's idle thread pools
    stop spinning. Round r samples each contender's process r mod ``processes``, so that a process that ran slow for
    its whole life would hold a minority of its contender's samples. (What first looked like such processes here,
    all three of one contender slow together, was the calibration fixed in the worker: one short count of calls
    per sample shared by the contender's processes. Several processes stay as cheap insurance.)
    """
    load_before = os.getloadavg()[0]
    specs = {n: (n, None) for n in names}
    specs.update(envs or {})
    # Started round-robin (one process of each contender, then the next of each), so that no contender's processes
    # are all neighbours in start order (and in memory).
    workers = {label: [] for label in specs}
    for _ in range(processes):
        for label, (name, env) in specs.items():
            workers[label].append(Contender(case, name, env, label))
    try:
        ready = {label: [w.ask() for w in ws] for label, ws in workers.items()}
        for label, msgs in ready.items():
            if any("unavailable" in msg for msg in msgs):
                print(f"  ({label} skipped: {msgs[0].get('unavailable')})", file=sys.stderr)
                for w in workers.pop(label):
                    w.close()
        with tempfile.TemporaryDirectory() as tmp:
            worst = check(case, {label: ws[0] for label, ws in workers.items()}, Path(tmp))
        sample = max(min_time / rounds, 0.005)
        number = {label: ws[0].ask(op="calibrate", sample=sample)["number"] for label, ws in workers.items()}
        print(f"  calls per sample: {number}", file=sys.stderr)
        for ws in workers.values():
            for w in ws[1:]:  # the same warm-up for the others (their answer is not used: one count per contender)
                w.ask(op="calibrate", sample=sample)
        data = {label: {"seconds": [], "faults": [], "process": []} for label in workers}
        labels = list(workers)
        pids = [os.getpid()] + [w.proc.pid for ws in workers.values() for w in ws]
        start = (time.perf_counter(), machine_cpu(), own_cpu(pids))
        order = random.Random(0)  # a seeded shuffle per round: a rotation kept hand2 right after hand in nearly every
        for r in range(rounds):   # round (0.5 s apart, while other pairs were up to seconds apart): a too-quiet control
            round_labels = labels[:]
            order.shuffle(round_labels)
            for label in round_labels:
                time.sleep(settle)
                msg = workers[label][r % processes].ask(op="sample", number=number[label], sample=sample)
                data[label]["seconds"].append(msg["seconds"])
                data[label]["faults"].append(msg["faults"])
                data[label]["process"].append(r % processes)
        other = other_cpu(start, (time.perf_counter(), machine_cpu(), own_cpu(pids)))
        for label, ws in workers.items():
            msg = ws[0].ask(op="memory")
            data[label]["peak_bytes"], data[label]["memory_method"] = msg["peak_bytes"], msg["method"]
            data[label]["process_medians"] = [
                statistics.median(s for s, k in zip(data[label]["seconds"], data[label]["process"]) if k == i)
                for i in range(min(processes, rounds))]
    finally:
        for ws in workers.values():
            for w in ws:
                w.close()
    return {"contenders": data, "load": (load_before, os.getloadavg()[0]), "other_cpu": other,
            "max_rel_grad_diff": worst}


def machine_cpu() -> tuple | None:
    """(busy, stolen) CPU seconds of the whole machine so far, from /proc/stat (Linux); None elsewhere."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    hz = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / hz, steal / hz


def own_cpu(pids: list) -> float | None:
    """CPU seconds used so far by the benchmark's own processes (the parent and its workers); None without /proc."""
    total = 0.0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    except (OSError, ValueError, IndexError):
        return None
    return total


def other_cpu(start: tuple, end: tuple) -> tuple | None:
    """(cores busy with other processes' work, cores stolen by the hypervisor), averaged over the rounds; None
    where /proc does not say. The load average cannot tell: the benchmark's own threads are in it."""
    (t0, m0, o0), (t1, m1, o1) = start, end
    if None in (m0, m1, o0, o1) or t1 <= t0:
        return None
    return max(0.0, (m1[0] - m0[0]) - (o1 - o0)) / (t1 - t0), (m1[1] - m0[1]) / (t1 - t0)


# ----- the parent: rows, ratios, tables -----
RATIOS = [  # (column, numerator, denominator, quantity)
    ("hand2/hand", "hand2", "hand", "time"),
    ("engine/hand", "engine", "hand", "time"),
    ("engine/hand peak", "engine", "hand", "peak"),
    ("torch/hand", "torch", "hand", "time"),
    ("engine_torch/torch", "engine_torch", "torch", "time"),
    ("engine_torch/torch peak", "engine_torch", "torch", "peak"),
    ("engine_fwd/hand_fwd", "engine_fwd", "hand_fwd", "time"),
    ("engine/hand_fwd", "engine", "hand_fwd", "time"),
    ("hand/hand_fwd", "hand", "hand_fwd", "time"),
    ("autograd/hand", "autograd", "hand", "time"),
    ("jax/hand", "jax", "hand", "time"),
    ("engine_torch_cuda/torch_cuda", "engine_torch_cuda", "torch_cuda", "time"),
    ("gpu_speedup_engine", "engine_torch", "engine_torch_cuda", "time"),
    ("gpu_speedup_torch", "torch", "torch_cuda", "time"),
]


def summarise(case: Case, n_params: int, res: dict) -> dict:
    """One flat row per net: per contender min/median/max seconds, peak bytes, faults per call; the ratios."""
    row = {"net": case.label, "layers": "x".join(map(str, case.layers)), "batch": case.batch,
           "activation": case.activation, "loss": case.loss, "dtype": case.dtype, "size": case.size,
           "n_params": n_params, "max_rel_grad_diff": res["max_rel_grad_diff"],
           "load_before": res["load"][0], "load_after": res["load"][1],
           "other_cores": (res.get("other_cpu") or (None, None))[0], "stolen_cores": (res.get("other_cpu") or (None, None))[1]}
    for name, d in res["contenders"].items():
        s = d["seconds"]
        row.update({f"{name}_min": min(s), name: statistics.median(s), f"{name}_max": max(s),
                    f"{name}_process_medians": " ".join(f"{m:.6g}" for m in d.get("process_medians", ())),
                    f"{name}_faults": statistics.median(d["faults"]), f"{name}_faults_max": max(d["faults"]),
                    f"{name}_peak_bytes": d["peak_bytes"], f"{name}_memory_method": d["memory_method"]})
    contenders = res["contenders"]
    for col, a, b, quantity in RATIOS:
        if quantity == "peak":
            ka, kb = f"{a}_peak_bytes", f"{b}_peak_bytes"
            if row.get(ka) is not None and row.get(kb):
                row[col] = row[ka] / row[kb]
        elif a in contenders and b in contenders:
            # paired: a's sample over b's in the same round (taken seconds apart), so that a slow phase of the
            # machine, which lasts seconds here, divides out instead of landing on whichever contender it met
            paired = sorted(x / y for x, y in zip(contenders[a]["seconds"], contenders[b]["seconds"]))
            row[col] = statistics.median(paired)
            row[f"{col}_q1"], _, row[f"{col}_q3"] = statistics.quantiles(paired, n=4, method="inclusive") \
                if len(paired) > 1 else (paired[0],) * 3
            row[f"{col}_of_medians"] = row[a] / row[b]
    return row


def run(cases, devices, rounds, min_time, only=None):
    rows = []
    names = [n for n in CPU_CONTENDERS if "cpu" in devices] + [n for n in CUDA_CONTENDERS if "cuda" in devices]
    if only:
        names = [n for n in names if n in only or n in ("hand", "hand2")]
    for case in cases:
        print(f"timing {case.label} ...", file=sys.stderr, flush=True)
        case_names = [n for n in names if case.size != "gpu" or n.startswith(("torch", "engine_torch"))]
        res = measure_case(case, case_names, rounds, min_time, settle=ARGS.settle, processes=ARGS.processes)
        rows.append(summarise(case, make_problem(case)[0].n_params, res))
    return rows


def count_instructions(case: Case, name: str) -> float | None:
    """Instructions per call of contender ``name`` on ``case`` (``harness.instructions_per_call``: one thread,
    30 calls minus 10); None if the contender is not installed."""
    return instructions_per_call(lambda n: [str(Path(__file__).resolve()), "--worker", json.dumps(asdict(case)), name,
                                            "--threads", "1", "--calls", str(n)], f"{name} ({case.label})")


def instruction_table(cases, only=None) -> list[tuple]:
    """(net, contender, instructions per call, over hand's) for each CPU contender of each CPU net."""
    names = [n for n in CPU_CONTENDERS if n not in ("hand2", "jax") and (not only or n in only or n == "hand")]
    out = []
    for case in cases:
        if case.size == "gpu":
            continue
        print(f"counting instructions on {case.label} ...", file=sys.stderr, flush=True)
        counts = {n: count_instructions(case, n) for n in names}
        for n, c in counts.items():
            if c is not None:
                out.append((case.label, n, c, c / counts["hand"] if counts.get("hand") else float("nan")))
    return out


def methods_in(rows) -> list:
    return [m for m in CPU_CONTENDERS + CUDA_CONTENDERS if any(m in r for r in rows)]


def tables(rows):
    """(title, header, body rows) for the per-contender table and the ratio table; body cells are strings."""
    per = []
    for r in rows:
        for m in methods_in([r]):
            peak = r.get(f"{m}_peak_bytes")
            per.append([r["net"], m] + [f"{r[k] * 1e3:.3f}" for k in (m + "_min", m, m + "_max")]
                       + [" ".join(f"{float(v) * 1e3:.2f}" for v in r.get(m + "_process_medians", "").split()) or "-"]
                       + ["-" if peak is None else f"{peak / 1e6:.2f}", f"{r[m + '_faults']:.0f}"])
    cols = [c for c, *_ in RATIOS if any(c in r for r in rows)]
    ratios = [[r["net"]] + [_ratio_cell(r, c) for c in cols] for r in rows]
    return [("per contender: ms per call (min, median, max over the rounds), peak MB of one call, minor faults per call",
             ["net", "contender", "ms min", "ms median", "ms max", "ms per process", "peak MB", "faults"], per),
            ("ratios: median over the rounds of the two contenders' samples in the same round (middle half of "
             "those ratios); peak: of peak memory", ["net"] + cols, ratios)]


def _ratio_cell(row: dict, col: str) -> str:
    if col not in row:
        return ""
    if f"{col}_q1" not in row:
        return f"{row[col]:.2f}"
    return f"{row[col]:.2f} ({row[col + '_q1']:.2f}-{row[col + '_q3']:.2f})"


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "threads": ARGS.threads or "default", "clock": ARGS.clock,
            "malloc": ARGS.malloc, "processes": ARGS.processes, "load_1min": round(os.getloadavg()[0], 2), "python": platform.python_version(),
            "numpy": np.__version__, "gpu": "none"}
    from importlib.metadata import PackageNotFoundError, version
    for peer in ("torch", "jax", "autograd"):
        try:
            info[peer] = version(peer)
        except PackageNotFoundError:
            info[peer] = "absent"
    if info["torch"] != "absent":
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def describe_machine(info) -> str:
    return (f"{info['cpu']} ({info['cores']} cores), threads {info['threads']}, {info['clock']} clock, "
            f"{info['malloc']} malloc, {info.get('processes', 3)} processes per contender, GPU {info['gpu']}; "
            f"numpy {info['numpy']}, torch {info['torch']}, jax {info['jax']}, HIPS autograd {info['autograd']}, "
            f"Python {info['python']}; 1-min load average at the start {info['load_1min']}")


def load_warnings(rows, info) -> list[str]:
    """Say when other processes (or the hypervisor) took CPU time during a row, or the control says the row cannot
    resolve 5%, and what to do about it."""
    out = []
    for r in rows:
        if r.get("other_cores") is not None:  # measured: other processes' CPU time, and the hypervisor's steal
            if r["other_cores"] > 0.1 or r["stolen_cores"] > 0.1:
                out.append(f"{r['net']}: other processes kept {r['other_cores']:.2f} of {info['cores']} cores busy "
                           f"during the rounds, and the hypervisor took {r['stolen_cores']:.2f}")
            continue
        a, b = r["load_before"], r["load_after"]  # (no /proc: the load average, which counts our threads too)
        if abs(b - a) > max(0.5, 0.25 * a) or max(a, b) > info["cores"]:
            out.append(f"{r['net']}: 1-min load average {a:.2f} -> {b:.2f} on {info['cores']} cores")
    for r in rows:
        if "hand2/hand" in r and abs(r["hand2/hand"] - 1.0) > 0.05:
            out.append(f"{r['net']}: the control hand2/hand is {r['hand2/hand']:.2f} (identical code): this row cannot "
                       f"resolve differences of {abs(r['hand2/hand'] - 1.0):.0%}; rerun on a quieter machine, with more "
                       "--rounds and --processes, or with --clock cpu --threads 1")
    if out and not (ARGS.clock == "cpu" and ARGS.threads == 1):
        out.append("other work competed for the CPU during these rows, or the run cannot resolve small differences: "
                   "their times carry that noise. For figures "
                   "other processes do not inflate, rerun with --clock cpu --threads 1 (CPU time on one thread; "
                   "not what a user sees)")
    return out


def report(rows, info, console=None):
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=max(160, Console().width))
    console.print(f"[bold]machine[/]: {describe_machine(info)}")
    for col, meaning in LEGEND:
        console.print(f"  [bold]{col}[/]: {meaning}")
    for title, header, body in tables(rows):
        t = Table(title=title)
        for i, h in enumerate(header):
            t.add_column(h, justify="left" if i == 0 else "right")
        for cells in body:
            t.add_row(*cells)
        console.print(t)
    for w in load_warnings(rows, info):
        console.print(f"[red]load[/]: {w}")


def markdown(rows, info) -> str:
    out = [f"Machine: {describe_machine(info)}.", ""]
    out += [f"- `{col}`: {meaning}" for col, meaning in LEGEND] + [""]
    for title, header, body in tables(rows):
        out += [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(cells) + " |" for cells in body]
        out.append("")
    out += [f"Load: {w}" for w in load_warnings(rows, info)]
    return "\n".join(out)


def main():
    if ARGS.worker:
        return worker(*ARGS.worker)
    only = set(ARGS.only.split(",")) if ARGS.only else None
    info = machine()
    cuda = info["gpu"] != "none"
    if ARGS.devices == "auto":
        devices = ["cpu"] + (["cuda"] if cuda else [])
    else:
        devices = [d.strip() for d in ARGS.devices.split(",")]
        if "cuda" in devices and not cuda:
            raise SystemExit("--devices cuda needs torch with a CUDA GPU; "
                             + ("torch is not installed" if info["torch"] == "absent" else
                                "torch.cuda.is_available() is False"))
    rounds = ARGS.rounds or (3 if ARGS.quick else 9)
    min_time = ARGS.min_time or (0.05 if ARGS.quick else 1.0)
    cases = CASES + (LARGE if ARGS.large else [])
    if ARGS.nets:
        cases = [cases[int(i)] for i in ARGS.nets.split(",")]
    if ARGS.instructions and shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (e.g. apt install valgrind); run without it for times only")
    gc.collect()
    rows = run(cases, devices, rounds, min_time, only)
    report(rows, info)
    if ARGS.instructions:
        counted = instruction_table(cases, only)
        print("\ninstructions per call (cachegrind; one BLAS thread; 30 calls minus 10); over hand: the ratio to "
              "the hand-written code's count on the same net")
        for net, name, c, ratio in counted:
            print(f"  {net:32s} {name:13s} {c:14,.0f}   {ratio:5.3f}")
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
