"""Roofline: the least time each call can take on a device, and the time it does take here.

A call that does ``F`` FLOPs and moves ``B`` bytes cannot finish faster than its compute time
``F / peak`` nor than its memory time ``B / bandwidth``; its roofline time is the larger of the
two, and the call is *compute-bound* or *memory-bound* accordingly (Williams, Waterman &
Patterson, "Roofline", CACM 2009). The bytes are :mod:`modelstats.schema`'s ``bytes_read`` and
``bytes_written``: every call reads its inputs and weights from memory and writes its outputs
back, as stored, with no fusion and no cache reuse between calls. Summed over the calls, the
roofline times give a lower bound on a model's latency that no implementation on that device
beats under that traffic model, and the per-call bound says where FLOPs mislead: a depthwise
convolution or a batch normalisation does few FLOPs per byte and waits on memory.

:class:`Device` describes a machine by its peaks; :func:`devices` is a catalogue of vendor
figures (sources in docs/roofline.md); :func:`measure_device` measures this machine.
:func:`roofline` gives the per-call times, :func:`measure_latency` times every call alone and the
whole model, and :meth:`Roofline.compare` and :meth:`Roofline.plot` put them side by side.

Importing this module loads neither pandas nor Keras (the command line reads the catalogue).

>>> from modelstats.latency import Device
>>> toy = Device("toy", peak_flops=1e9, bandwidth=1e8)
>>> toy.ridge()  # FLOPs per byte above which a call is compute-bound
10.0
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from modelstats.errors import ModelStatsError, OptionError

__all__ = [
    "Device",
    "devices",
    "catalogue_table",
    "get_device",
    "measure_device",
    "roofline",
    "Roofline",
    "measure_latency",
    "Latency",
    "rank_correlation",
]


@dataclass(frozen=True)
class Device:
    """A device as the roofline model sees it: peak arithmetic and memory bandwidth.

    Parameters
    ----------
    name : str
    peak_flops : float
        Peak FLOP/s for ``dtype`` (dense: no structured-sparsity factor).
    bandwidth : float
        Peak memory bandwidth in bytes/s.
    peak_flops_by_dtype : mapping of str to float, optional
        Peak FLOP/s (or integer op/s) for other dtypes, keyed by Keras dtype name
        (``"float16"``, ``"bfloat16"``, ``"int8"``; ``"tensorfloat32"`` for TF32 tensor cores).
        A call uses the peak of its compute dtype, ``peak_flops`` when its dtype is not listed.
    dtype : str, default "float32"
        The dtype ``peak_flops`` is for.
    kind : str
        What sort of device (``"datacenter GPU"``, ``"laptop CPU"``, ...).
    source : str
        Where the figures come from (a vendor document, or ``measure_device``).
    note : str
        Anything a reader of the figures should know (which clocks, which variant).

    Examples
    --------
    >>> from modelstats.latency import Device
    >>> gpu = Device("gpu", 20e12, 2e12, peak_flops_by_dtype={"float16": 300e12})
    >>> gpu.peak("float16"), gpu.peak("float32"), gpu.peak("int32")
    (300000000000000.0, 20000000000000.0, 20000000000000.0)
    >>> Device("broken", peak_flops=0, bandwidth=1e9)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    modelstats.errors.OptionError: Device 'broken': peak_flops must be a positive number of ...
    """

    name: str
    peak_flops: float
    bandwidth: float
    peak_flops_by_dtype: Optional[Mapping[str, float]] = field(default=None, hash=False)
    dtype: str = "float32"
    kind: str = ""
    source: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        checks = [("peak_flops", self.peak_flops, "FLOP/s"), ("bandwidth", self.bandwidth,
                                                              "bytes/s")]
        checks += [(f"peak_flops_by_dtype[{k!r}]", v, "FLOP/s")
                   for k, v in (self.peak_flops_by_dtype or {}).items()]
        for name, value, unit in checks:
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise OptionError(f"Device {self.name!r}: {name} must be a positive number of "
                                  f"{unit}; received {value!r}.")

    def peak(self, dtype: Optional[str] = None) -> float:
        """Peak FLOP/s for calls computing in ``dtype`` (``peak_flops`` when not listed)."""
        by_dtype = self.peak_flops_by_dtype or {}
        return float(by_dtype.get(dtype, self.peak_flops) if dtype else self.peak_flops)

    def ridge(self, dtype: Optional[str] = None) -> float:
        """The ridge point in FLOPs per byte: calls below it are memory-bound."""
        return self.peak(dtype) / self.bandwidth


# -- the catalogue ------------------------------------------------------------------------------
# Vendor figures only, each cited in docs/roofline.md (which tests/test_roofline.py checks against
# this list). Dense peaks: where a vendor states "with sparsity" the figure is halved back to the
# dense one the same document gives. T = 1e12, G = 1e9.
T, G = 1e12, 1e9

_NVIDIA_A100 = ("https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
                "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf")
_NVIDIA_H100 = "https://www.nvidia.com/en-us/data-center/h100/"
_NVIDIA_T4 = ("https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/tesla-t4/"
              "t4-tensor-core-datasheet-951643.pdf")
_NVIDIA_ADA = ("https://images.nvidia.com/aem-dam/Solutions/geforce/ada/"
               "nvidia-ada-gpu-architecture.pdf")
_NVIDIA_ORIN = ("https://www.nvidia.com/content/dam/en-zz/Solutions/gtcf21/jetson-orin/"
                "nvidia-jetson-agx-orin-technical-brief.pdf")
_QUALCOMM_X_ELITE = ("https://www.qualcomm.com/products/mobile/snapdragon/pcs-and-tablets/"
                     "snapdragon-x-elite")

_CATALOGUE: tuple[Device, ...] = (
    Device("a100-sxm4-80gb", 19.5 * T, 2039 * G, kind="datacenter GPU", source=_NVIDIA_A100,
           peak_flops_by_dtype={"float32": 19.5 * T, "tensorfloat32": 156 * T,
                                "float16": 312 * T, "bfloat16": 312 * T, "int8": 624 * T},
           note="NVIDIA A100 80GB SXM: FP32 on CUDA cores; TF32, FP16, BF16 and INT8 on "
                "tensor cores, dense (the datasheet's sparse figures are twice these); HBM2e."),
    Device("h100-sxm5", 67 * T, 3350 * G, kind="datacenter GPU", source=_NVIDIA_H100,
           peak_flops_by_dtype={"float32": 67 * T, "tensorfloat32": 494.5 * T,
                                "float16": 989.5 * T, "bfloat16": 989.5 * T,
                                "int8": 1979 * T},
           note="NVIDIA H100 SXM: the vendor gives tensor-core figures with sparsity and says "
                "they are half without; these are the dense halves. HBM3."),
    Device("t4", 8.1 * T, 320 * G, kind="datacenter inference GPU", source=_NVIDIA_T4,
           peak_flops_by_dtype={"float32": 8.1 * T, "float16": 65 * T, "int8": 130 * T},
           note="NVIDIA T4: FP16 is mixed precision (FP16 products, FP32 sums) on tensor "
                "cores; GDDR6."),
    Device("rtx-4090", 82.6 * T, 1008 * G, kind="consumer GPU", source=_NVIDIA_ADA,
           peak_flops_by_dtype={"float32": 82.6 * T, "float16": 165.2 * T,
                                "bfloat16": 165.2 * T, "int8": 660.6 * T},
           note="NVIDIA GeForce RTX 4090 (Ada whitepaper): FP16/BF16 tensor cores with FP32 "
                "accumulation, dense; GDDR6X."),
    Device("jetson-agx-orin-64gb", 5.3 * T, 204.8 * G, kind="edge accelerator",
           source=_NVIDIA_ORIN, peak_flops_by_dtype={"float32": 5.3 * T, "int8": 85 * T},
           note="NVIDIA Jetson AGX Orin 64GB module, GPU only: 2048 CUDA cores (FP32); tensor "
                "cores 170 INT8 TOPS with sparsity, 85 dense. The DLAs are not counted. "
                "LPDDR5 shared with the CPU."),
    Device("tpu-v4", 275 * T, 1200 * G, dtype="bfloat16", kind="datacenter accelerator",
           source="https://cloud.google.com/tpu/docs/v4",
           peak_flops_by_dtype={"bfloat16": 275 * T, "int8": 275 * T},
           note="Google Cloud TPU v4, per chip (two TensorCores): 275 TFLOPS bf16 or int8; "
                "HBM2. Other dtypes are held to the bf16 peak (an optimistic bound)."),
    Device("tpu-v5e", 197 * T, 819 * G, dtype="bfloat16", kind="datacenter accelerator",
           source="https://cloud.google.com/tpu/docs/v5e",
           peak_flops_by_dtype={"bfloat16": 197 * T, "int8": 393 * T},
           note="Google Cloud TPU v5e, per chip: 197 TFLOPS bf16, 393 TOPS int8; HBM2."),
    Device("apple-m4-neural-engine", 38 * T, 120 * G, dtype="unstated",
           kind="on-device accelerator (tablet and laptop SoC)",
           source="https://www.apple.com/newsroom/2024/05/apple-introduces-m4-chip/",
           note="Apple M4's 16-core Neural Engine: 38 trillion operations per second, "
                "precision not stated by Apple; 120 GB/s of unified memory shared with the "
                "CPU and GPU. Every dtype is held to the one figure."),
    Device("apple-m2-neural-engine", 15.8 * T, 100 * G, dtype="unstated",
           kind="on-device accelerator (laptop SoC)",
           source="https://www.apple.com/newsroom/2022/06/"
                  "apple-unveils-m2-with-breakthrough-performance-and-capabilities/",
           note="Apple M2's 16-core Neural Engine: 15.8 trillion operations per second, "
                "precision not stated; 100 GB/s of unified memory shared with the CPU and "
                "GPU."),
    Device("snapdragon-x1e-84-100-gpu", 4.6 * T, 135 * G, kind="laptop SoC GPU",
           source=_QUALCOMM_X_ELITE, peak_flops_by_dtype={"float32": 4.6 * T},
           note="Qualcomm Snapdragon X Elite X1E-84-100, Adreno X1-85 GPU only: up to 4.6 "
                "TFLOPS, FP32 (1,536 FP32 ALUs; the X1E-80-100 and X1E-78-100: 3.8); "
                "LPDDR5x up to 135 GB/s shared with the CPU and NPU. Qualcomm gives no CPU "
                "FLOP/s and no FP16 rate: other dtypes are held to the FP32 figure, which is "
                "no bound for a call the GPU runs faster. The NPU is `snapdragon-x-elite-npu`."),
    Device("snapdragon-x-elite-npu", 45 * T, 135 * G, dtype="unstated",
           kind="on-device accelerator (laptop SoC)", source=_QUALCOMM_X_ELITE,
           note="Qualcomm Snapdragon X Elite's Hexagon NPU (every X Elite part): 45 TOPS, "
                "precision not stated; the same LPDDR5x, up to 135 GB/s, shared with the CPU "
                "and GPU. Every dtype is held to the one figure."),
)


def devices() -> dict[str, Device]:
    """The catalogue of devices with vendor-documented peaks, by name.

    Every figure is cited in docs/roofline.md; peaks are dense (no structured sparsity).

    Examples
    --------
    >>> from modelstats.latency import devices
    >>> catalogue = devices()
    >>> len(catalogue) >= 8
    True
    >>> a100 = catalogue["a100-sxm4-80gb"]
    >>> a100.peak("float16") / 1e12, a100.bandwidth / 1e9  # dense FP16 tensor, HBM2e
    (312.0, 2039.0)
    """
    return {d.name: d for d in _CATALOGUE}


def catalogue_table() -> str:
    """The catalogue as the Markdown table docs/roofline.md embeds (tests keep them equal).

    >>> catalogue_table().splitlines()[2].split(" | ")[:3]
    ['| `a100-sxm4-80gb`', 'datacenter GPU', '19.5 T (float32)']
    """
    lines = ["| name | kind | peak (dtype) | dense peaks by dtype (TFLOP/s or TOP/s) | bandwidth "
             "| source | notes |", "|---|---|---|---|---|---|---|"]
    for d in _CATALOGUE:
        by_dtype = ", ".join(f"{k} {v / T:g}" for k, v in (d.peak_flops_by_dtype or {}).items())
        lines.append(f"| `{d.name}` | {d.kind} | {d.peak_flops / T:g} T ({d.dtype}) | "
                     f"{by_dtype or '-'} | {d.bandwidth / G:g} GB/s | <{d.source}> | "
                     f"{d.note} |")
    return "\n".join(lines)


# Names that ask for this machine, measured (the command line's --device measured).
MEASURED_NAMES = ("measured", "this", "local")


def get_device(device: Union[str, Device]) -> Device:
    """A :class:`Device` as given, a catalogue entry by name (case-insensitive), or this
    machine measured (``"measured"``).

    Raises
    ------
    OptionError
        An unknown name; the message lists the catalogue.

    Examples
    --------
    >>> from modelstats.latency import get_device
    >>> get_device("A100-SXM4-80GB").kind
    'datacenter GPU'
    >>> get_device("a42")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    modelstats.errors.OptionError: No device 'a42'; choose one of [...] or 'measured' ...
    """
    if isinstance(device, Device):
        return device
    if not isinstance(device, str):
        raise OptionError(f"device must be a Device or a catalogue name; received {device!r}.")
    key = device.strip().lower()
    if key in MEASURED_NAMES:
        return measure_device()
    catalogue = devices()
    if key not in catalogue:
        raise OptionError(f"No device {device!r}; choose one of {sorted(catalogue)} or "
                          "'measured' (this machine, measured by measure_device()), or pass "
                          "modelstats.Device(name, peak_flops, bandwidth).")
    return catalogue[key]


# -- measuring this machine -----------------------------------------------------------------------

# The best measurement of this process so far, and the largest budget it had.
_MEASURED: dict[str, Any] = {}


def _best_rate(run: Callable[[], Any], amount: float, budget: float, least: int = 2) -> float:
    """The best ``amount`` per second over runs of ``run`` (one warm-up, then at least ``least``
    runs and as many as fit in ``budget`` seconds). The best, not the median: a peak is what
    the machine can do, and interference from other processes only ever slows a run down."""
    run()
    best, spent, runs = 0.0, 0.0, 0
    while runs < least or spent < budget:
        start = time.perf_counter()
        run()
        elapsed = time.perf_counter() - start
        best = max(best, amount / elapsed)
        spent += elapsed
        runs += 1
        if runs >= 200:
            break
    return best


def _block(value: Any) -> Any:
    """Wait for a backend's asynchronous result (JAX dispatches asynchronously; TensorFlow and
    PyTorch on the CPU return finished tensors)."""
    import keras

    for leaf in keras.tree.flatten(value):
        wait = getattr(leaf, "block_until_ready", None)
        if wait is not None:
            wait()
    return value


def measure_device(*, budget: float = 3.0, refresh: bool = False) -> Device:
    """Measure this machine's peak matmul FLOP/s and memory bandwidth (float32).

    - **FLOP/s**: square float32 matrix products (n = 512, 1024, and 1536 with a budget of 2 s
      or more), run with the active Keras backend's ``keras.ops.matmul`` (the library and
      threads the layers run on: oneDNN/Eigen under TensorFlow, XLA under JAX) and with numpy's
      BLAS; ``2 n^3`` FLOPs per product. Small products finish between interruptions by
      other processes and large ones reach the library's best blocking: the best is kept.
    - **Bandwidth**: numpy copies of a 128 MiB float32 array into a preallocated one, on one
      thread and split over the cores (each byte read once and written once, as STREAM's Copy
      counts them, and as a layer reads its inputs and writes its outputs). numpy, because
      backend operations allocate their outputs, so timing them would time the kernel handing
      out fresh pages. The array is 4x the largest last-level cache of current CPUs, so the
      copy runs from DRAM.

    Each figure is the best rate over the runs, the best of the two libraries: a peak is an
    upper bound, and other processes only ever slow a run down. The whole measurement takes
    about ``budget`` seconds. It is reused for the rest of the process; a call with a larger
    budget, or ``refresh=True``, measures again and keeps the best of each figure so far.

    Returns
    -------
    Device
        ``kind="this machine (measured)"``, ``peak_flops`` and ``bandwidth`` as measured;
        ``note`` holds the rate of each benchmark.

    Examples
    --------
    >>> import modelstats
    >>> here = modelstats.measure_device(budget=0.5)
    >>> here.peak_flops > 1e8 and here.bandwidth > 1e8
    True
    """
    if _MEASURED and not refresh and budget <= _MEASURED["budget"]:
        return _MEASURED["device"]
    import numpy as np

    # Small products finish between interruptions; large ones need a budget to repeat.
    sizes = (512, 1024, 1536) if budget >= 2 else (512, 1024)
    share = budget * 2 / 3 / (2 * len(sizes))  # a third of the budget is left for the copy
    rates = {}
    rng = np.random.default_rng(0)
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        flops = 2.0 * n ** 3  # n^2 outputs, each n multiplies and n adds
        rates[f"numpy matmul {n}"] = _best_rate(lambda: a @ b, flops, share)
        rates[f"backend matmul {n}"] = _backend_matmul_rate(a, b, flops, share)
    peak = max(rates.values())
    bandwidth, copy_note = _copy_bandwidth(budget / 3)
    device = Device(
        name=f"{_cpu_name()} (measured)",
        peak_flops=peak,
        bandwidth=bandwidth,
        peak_flops_by_dtype={"float32": peak},
        kind="this machine (measured)",
        source="modelstats.measure_device()",
        note="; ".join(f"{k}: {v / G:.1f} GFLOP/s" for k, v in rates.items()) + "; "
             + copy_note,
    )
    previous = _MEASURED.get("device")
    if previous is not None and (previous.peak_flops > peak or previous.bandwidth > bandwidth):
        peak, bandwidth = max(peak, previous.peak_flops), max(bandwidth, previous.bandwidth)
        device = Device(device.name, peak, bandwidth, {"float32": peak}, kind=device.kind,
                        source=device.source, note=f"{device.note}; best of this and an "
                                                   "earlier measurement")
    _MEASURED.update(device=device, budget=max(budget, _MEASURED.get("budget", 0.0)))
    return device


def _backend_matmul_rate(a: Any, b: Any, flops: float, budget: float) -> float:
    import keras

    x, y = keras.ops.convert_to_tensor(a), keras.ops.convert_to_tensor(b)
    return _best_rate(lambda: _block(keras.ops.matmul(x, y)), flops, budget)


def _copy_bandwidth(budget: float) -> tuple[float, str]:
    """Bytes/s of a copy of 128 MiB split over the cores, each byte read and written once."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    n = 32 * 2 ** 20  # float32 elements: 128 MiB
    src = np.ones(n, dtype=np.float32)
    dst = np.zeros_like(src)  # written once here, so the timed copies fault in no pages
    workers = max(1, os.cpu_count() or 1)
    bounds = np.linspace(0, n, workers + 1).astype(int)
    parts = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
    with ThreadPoolExecutor(workers) as pool:  # numpy releases the GIL while it copies
        def threaded() -> None:
            list(pool.map(lambda s: np.copyto(dst[s], src[s]), parts))

        moved = 2.0 * src.nbytes  # read once, written once
        single = _best_rate(lambda: np.copyto(dst, src), moved, budget / 2)
        split = _best_rate(threaded, moved, budget / 2)
    note = (f"copy 128 MiB: {single / G:.1f} GB/s on one thread, {split / G:.1f} GB/s on "
            f"{workers}")
    return max(single, split), note


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


# -- the roofline of a model ---------------------------------------------------------------------

@dataclass
class Roofline:
    """Per-call roofline times of a model on one device (build it with :func:`roofline`).

    Attributes
    ----------
    layers : pandas.DataFrame
        One row per call node: ``type``, ``dtype`` (its compute dtype), ``flops``,
        ``bytes_read``, ``bytes_written``, ``intensity`` (FLOPs per byte), ``t_compute_s``
        (FLOPs / peak of the dtype), ``t_memory_s`` (bytes / bandwidth), ``t_roofline_s`` (the
        larger) and ``bound`` (``"compute"``, ``"memory"``, ``"none"`` for a call that moves
        and computes nothing, ``"unknown"`` for a call without a cost rule: its FLOPs, so its
        ``t_compute_s`` and ``t_roofline_s``, are ``<NA>``).
    device : Device
    batch_size : int
    total_s : float
        The model's lower-bound latency: the sum of ``t_roofline_s``, plus ``t_memory_s`` of the
        calls whose FLOPs are unknown (still a lower bound, a looser one: see ``partial``).
    partial : bool
        Some call has no cost rule; ``unsupported`` lists their types.
    unsupported : list of str
    """

    layers: Any
    device: Device
    batch_size: int
    total_s: float
    partial: bool
    unsupported: list = field(default_factory=list)

    def memory_bound(self, k: int = 5) -> Any:
        """The ``k`` memory-bound calls that cost the most time (by ``t_memory_s``)."""
        rows = self.layers[self.layers["bound"] == "memory"]
        return rows.sort_values("t_memory_s", ascending=False, kind="stable").head(k)

    def summary(self, nodes: Optional[Sequence[str]] = None, markdown: bool = False) -> str:
        """The lower bound, then the roofline of ``nodes`` (default: every call) as a table:
        plain text aligned in columns, or Markdown. The command line's ``--device``."""
        import pandas as pd

        from modelstats._render import pipe_table

        def number(value: Any, scale: float, digits: int) -> str:
            return "-" if pd.isna(value) else f"{float(value) * scale:,.{digits}f}"

        rows = self.layers if nodes is None else self.layers.loc[list(nodes)]
        header = ["node", "bound", "FLOPs/byte", "compute_us", "memory_us", "roofline_us"]
        body = [[str(node), row["bound"], number(row["intensity"], 1, 2),
                 number(row["t_compute_s"], 1e6, 1), number(row["t_memory_s"], 1e6, 1),
                 number(row["t_roofline_s"], 1e6, 1)]
                for node, row in rows.iterrows()]
        title = (f"Roofline on {self.device.name} ({self.device.peak() / G:,.1f} GFLOP/s, "
                 f"{self.device.bandwidth / G:,.1f} GB/s), batch {self.batch_size}: lower "
                 f"bound {self.total_s * 1e3:,.3f} ms"
                 + (f" (partial: no FLOPs for {', '.join(self.unsupported)})" if self.partial
                    else ""))
        if markdown:
            return f"## {title}\n\n{pipe_table(header, body)}\n"
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                           for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
                 for cells in [header, *body]]
        return title + "\n" + "\n".join(lines) + "\n"

    def compare(self, latency: "Latency") -> Any:
        """The predicted and measured time of every call side by side.

        Returns
        -------
        pandas.DataFrame
            ``type``, ``bound``, ``t_roofline_s``, ``t_measured_s`` and ``ratio`` (measured /
            roofline: how far the run is from the bound; <NA> where either is unknown).
        """
        table = self.layers[["type", "bound", "t_roofline_s"]].join(
            latency.layers[["t_measured_s", "status"]].rename(columns={"status": "measured"}))
        predicted = table["t_roofline_s"].astype("Float64")
        table["ratio"] = (table["t_measured_s"].astype("Float64")
                          / predicted.where(predicted > 0))
        return table

    def rank_correlation(self, latency: "Latency") -> float:
        """Spearman's rank correlation between predicted and measured per-call times, over the
        calls that ran and whose roofline time is known (the input layers left out)."""
        table = self.compare(latency)
        ran = table[(table["measured"] == "measured") & table["t_roofline_s"].notna()]
        return rank_correlation(ran["t_roofline_s"], ran["t_measured_s"])

    def plot(self, latency: Optional["Latency"] = None, ax: Any = None) -> Any:
        """The device's roof and every call with FLOPs as a point under it.

        x: arithmetic intensity (FLOPs per byte); y: attained FLOP/s. Predicted points sit on
        the roof (FLOPs / roofline time); with ``latency``, measured points (FLOPs / measured
        time) fall below it, and their distance down is how far the run is from the bound.
        """
        import numpy as np

        from modelstats._render import pyplot

        plt = pyplot()
        ax = ax or plt.subplots(figsize=(7, 5))[1]
        rows = self.layers[self.layers["flops"].fillna(0).astype("int64") > 0]
        rows = rows[rows["t_roofline_s"].notna()]
        intensity = rows["intensity"].astype(float).to_numpy()
        flops = rows["flops"].astype(float).to_numpy()
        peak = self.device.peak()
        low = min(intensity.min(initial=1.0), self.device.ridge()) / 4
        high = max(intensity.max(initial=1.0), self.device.ridge()) * 4
        xs = np.geomspace(low, high, 200)
        ax.plot(xs, np.minimum(peak, xs * self.device.bandwidth), color="black",
                label=f"roof: {peak / G:,.0f} GFLOP/s, {self.device.bandwidth / G:,.0f} GB/s")
        ax.scatter(intensity, flops / rows["t_roofline_s"].astype(float).to_numpy(), s=14,
                   color="tab:blue", label=f"predicted ({len(rows)} calls)")
        if latency is not None:
            measured = latency.layers.loc[rows.index, "t_measured_s"].astype(float).to_numpy()
            ok = np.isfinite(measured) & (measured > 0)
            ax.scatter(intensity[ok], flops[ok] / measured[ok], s=14, color="tab:red",
                       marker="x", label="measured")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (FLOPs / byte)")
        ax.set_ylabel("FLOP/s")
        ax.set_title(f"Roofline on {self.device.name}, batch {self.batch_size}")
        ax.legend(loc="lower right", fontsize="small")
        return ax


def roofline(
    model: Any,
    device: Union[str, Device],
    *,
    input_shape: Any = None,
    batch_size: int = 1,
    dtype: Optional[str] = None,
    convention: Any = None,
    expand_nested: bool = True,
) -> Roofline:
    """The roofline time of every call of a model on a device, and the model's lower bound.

    Parameters
    ----------
    model : keras.Model, networkx.DiGraph or Report
        A model, its graph from :func:`modelstats.to_networkx`, or a :class:`Report` (its
        costs are reused, at its batch size).
    device : Device or str
        A :class:`Device`, a name from :func:`devices`, or ``"measured"`` for this machine.
    input_shape : tuple, optional
        Input shape without batch, as for :func:`count_flops`.
    batch_size : int, default 1
        Inputs and outputs are moved per sample, weights once per batch.
    dtype : str, optional
        The dtype whose peak every call is held to (e.g. ``"tensorfloat32"`` when TF32 tensor
        cores run the float32 convolutions); default: each call's own compute dtype.
    convention : str or Convention, optional
        The FLOP convention (:func:`count_flops`).

    Returns
    -------
    Roofline
        ``layers`` (one row per call: ``t_compute_s``, ``t_memory_s``, ``t_roofline_s``,
        ``bound``, ...), ``total_s`` (the lower-bound latency), ``partial``.

    Examples
    --------
    >>> import keras, modelstats
    >>> x = keras.Input((8, 8, 3), name="x")
    >>> y = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(x)
    >>> y = keras.layers.ReLU(name="relu")(y)
    >>> toy = modelstats.Device("toy", peak_flops=1e9, bandwidth=1e8)
    >>> r = modelstats.roofline(keras.Model(x, y), toy)
    >>> r.layers.loc["conv", ["flops", "bytes_read", "bytes_written"]].tolist()
    [7776, 1200, 576]
    >>> # 7,776 FLOPs / 1e9 = 7.8 us < (1,200 + 576) bytes / 1e8 = 17.8 us: memory-bound
    >>> r.layers.loc["conv", "bound"], r.layers.loc["relu", "bound"]
    ('memory', 'memory')
    >>> round(r.total_s * 1e6, 2)  # (1,776 + 576 + 576) bytes / 1e8 B/s
    29.28
    """
    import pandas as pd

    from modelstats import schema
    from modelstats.report import Report, count_flops

    device = get_device(device)
    if isinstance(model, Report):
        costs, graph = model.layers, model.graph
        batch_size = model.totals["batch_size"]
    else:
        from modelstats.report import _graph

        batch_size = schema.check_batch_size(batch_size)
        graph = _graph(model, input_shape, expand_nested)
        costs = count_flops(graph, batch_size=batch_size, convention=convention)
    table = costs[["type", "flops", "bytes_read", "bytes_written", "intensity"]].copy()
    table.insert(1, "dtype", [dtype or graph.nodes[n].get("dtype") or device.dtype
                              for n in table.index])
    peaks = pd.Series([device.peak(d) for d in table["dtype"]], index=table.index)
    moved = (table["bytes_read"] + table["bytes_written"]).astype("float64")
    # Unknown FLOPs stay unknown (<NA>): a call without a rule is never timed as free.
    t_compute = table["flops"].astype("Float64") / peaks
    t_memory = (moved / device.bandwidth).astype("Float64")
    known = t_compute.notna()
    slower = known & (t_compute > t_memory).fillna(False)
    t_roofline = t_memory.copy()
    t_roofline[slower] = t_compute[slower]
    t_roofline[~known] = pd.NA
    bound = pd.Series("memory", index=table.index, dtype=object)
    bound[slower] = "compute"
    bound[known & (t_compute == 0).fillna(False) & (t_memory == 0)] = "none"
    bound[~known] = "unknown"
    table["t_compute_s"] = t_compute
    table["t_memory_s"] = t_memory
    table["t_roofline_s"] = t_roofline
    table["bound"] = bound
    total = float(t_roofline.sum()) + float(t_memory[~known].sum())
    unsupported = sorted(set(table.loc[~known, "type"]))
    return Roofline(table, device, int(batch_size), total, bool((~known).any()), unsupported)


# -- measuring the model --------------------------------------------------------------------------

@dataclass
class Latency:
    """Measured times of a model's calls run alone, and of the whole model
    (build it with :func:`measure_latency`).

    Attributes
    ----------
    layers : pandas.DataFrame
        One row per call node: ``type``, ``t_measured_s`` (median seconds of one call on
        random inputs of its shapes; ``<NA>`` when it could not run alone), ``status``
        (``"measured"``, ``"input"`` for an input layer, which runs nothing: 0 s, or
        ``"not run"``) and ``note`` (why not).
    model_s : float
        Median seconds of one call of the whole model.
    batch_size : int
    backend : str
        The Keras backend that ran them.
    """

    layers: Any
    model_s: float
    batch_size: int
    backend: str

    @property
    def sum_s(self) -> float:
        """The sum of the calls measured alone (missing ones left out)."""
        return float(self.layers["t_measured_s"].sum())

    @property
    def not_run(self) -> list:
        """Node ids of the calls that could not run alone."""
        return list(self.layers.index[self.layers["status"] == "not run"])


def _compiled(fn: Callable) -> Callable:
    """``fn`` compiled the way the backend runs a model's graph: without Python dispatch per
    operation in the timed calls (tf.function, jax.jit); eager on other backends."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    if backend == "jax":
        import jax

        return jax.jit(fn)
    return fn


def _alone(adapter: Any, keras_node: Any) -> Callable:
    """A function of a node's input tensors that calls its operation alone."""
    def call(*tensors: Any) -> Any:
        return adapter.call_node(keras_node, list(tensors), training=False)

    return call


@dataclass
class _Timed:
    """One compiled call to time: its function, inputs, and calls per sample."""

    fn: Callable
    args: list
    number: int = 1
    samples: list = field(default_factory=list)


def _prepare(fn: Callable, args: list, warmup: int, min_sample: float) -> _Timed:
    """Warm a call up (the first call also compiles it) and choose how many back-to-back
    calls make one sample last ``min_sample`` seconds: a timer reads a 20-microsecond call
    poorly."""
    for _ in range(warmup):
        _block(fn(*args))
    start = time.perf_counter()
    _block(fn(*args))
    once = time.perf_counter() - start
    return _Timed(fn, args, max(1, min(1000, math.ceil(min_sample / max(once, 1e-7)))))


def _sample(timed: _Timed) -> None:
    start = time.perf_counter()
    for _ in range(timed.number):
        out = timed.fn(*timed.args)
    _block(out)
    timed.samples.append((time.perf_counter() - start) / timed.number)


def _reason(exc: BaseException, width: int = 240) -> str:
    """One line saying why a call did not run: a compiler wraps the error in a trace of its
    own, so a long message keeps its end, where the original error is."""
    text = " ".join(str(exc).split())
    if len(text) > width:
        text = "..." + text[-width:]
    return f"{type(exc).__name__}: {text}"


def _random_input(shape: tuple, dtype: Optional[str], rng: Any) -> Any:
    """A backend tensor of ``shape``: standard normal floats, zeros for integer and boolean
    inputs (valid indices for an embedding, a neutral mask)."""
    import keras
    import numpy as np

    dtype = dtype or "float32"
    if "float" in dtype:
        values = rng.standard_normal(shape, dtype=np.float32)
        return keras.ops.cast(keras.ops.convert_to_tensor(values), dtype)
    return keras.ops.zeros(shape, dtype=dtype)


def measure_latency(
    model: Any,
    *,
    input_shape: Any = None,
    batch_size: int = 1,
    repeats: int = 10,
    warmup: int = 2,
    min_sample: float = 2e-3,
    nodes: Optional[Sequence[str]] = None,
    expand_nested: bool = True,
    seed: int = 0,
) -> Latency:
    """Time every call of a model alone, and the whole model, on this machine.

    Each call node's layer or operation runs alone, compiled by the active backend
    (``tf.function``, ``jax.jit``), on random inputs of its node's input shapes (with
    ``batch_size`` samples) and with the other arguments it was called with. After ``warmup``
    calls, ``repeats`` samples are timed (each of enough back-to-back calls to last
    ``min_sample`` seconds) and the median is kept. The samples are taken in rounds, every
    call and the whole model once per round, so a burst of load from another process slows
    one sample of many calls rather than every sample of a few. A call that cannot run alone
    (its layer needs Keras 2, or fails on concrete inputs) is reported with
    ``status="not run"`` and a note, never timed as 0.

    Parameters
    ----------
    model : keras.Model
    input_shape : tuple, optional
        Input shape without batch (for models with unknown sizes).
    batch_size : int, default 1
    repeats, warmup : int
    min_sample : float
        Seconds each timed sample lasts at least.
    nodes : sequence of str, optional
        Time only these node ids (the others get ``status="not run"``, note ``"not
        requested"``); the whole model is timed all the same.
    seed : int
        Seed of the random inputs.

    Returns
    -------
    Latency
        ``layers`` (``t_measured_s`` per node), ``model_s``, ``sum_s``.

    Examples
    --------
    >>> import keras, modelstats
    >>> x = keras.Input((16, 16, 3), name="x")
    >>> model = keras.Model(x, keras.layers.Conv2D(8, 3, name="conv")(x))
    >>> latency = modelstats.measure_latency(model, repeats=3, warmup=1)
    >>> latency.layers["status"].tolist()
    ['input', 'measured']
    >>> bool(latency.model_s > 0 and latency.layers.loc["conv", "t_measured_s"] > 0)
    True
    """
    import keras
    import networkx as nx
    import numpy as np
    import pandas as pd

    from modelstats import schema
    from modelstats.adapters import adapter_for_call
    from modelstats.report import _graph

    batch_size = schema.check_batch_size(batch_size)
    for name, value in (("repeats", repeats), ("warmup", warmup)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptionError(f"{name} must be a positive integer; received {value!r}.")
    if isinstance(model, nx.DiGraph):
        raise OptionError("measure_latency needs the keras.Model (it runs it), not its graph.")
    graph = _graph(model, input_shape, expand_nested)
    wanted = None if nodes is None else set(nodes)
    if wanted is not None and not wanted <= set(graph.nodes):
        raise OptionError(f"No node(s) {sorted(wanted - set(graph.nodes))} in the model; node "
                          f"ids look like {list(graph.nodes)[:3]}.")
    rng = np.random.default_rng(seed)
    timed: dict[str, _Timed] = {}
    statuses, notes = {}, {}
    for node_id, data in graph.nodes(data=True):
        statuses[node_id], notes[node_id] = "not run", ""
        if data["type"] == "InputLayer":
            statuses[node_id] = "input"  # runs nothing: 0 s
            continue
        if wanted is not None and node_id not in wanted:
            notes[node_id] = "not requested"
            continue
        try:
            args = []
            for src, index in data["inputs"]:
                producer = graph.nodes[src]
                lead = batch_size * producer.get("batch_factor", 1)
                args.append(_random_input((lead, *producer["output_shapes"][index]),
                                          producer["dtype"], rng))
            fn = _compiled(_alone(adapter_for_call(data["operation"]), data["keras_node"]))
            timed[node_id] = _prepare(fn, args, warmup, min_sample)
        except Exception as exc:  # noqa: BLE001 - reported per node, never a 0
            notes[node_id] = _reason(exc)
            continue
        statuses[node_id] = "measured"
    whole = _prepare_model(model, graph, batch_size, warmup, min_sample, rng)
    for _ in range(repeats):  # rounds: every call once, then the whole model
        for item in timed.values():
            _sample(item)
        _sample(whole)
    index = pd.Index(list(graph.nodes), name="node")
    seconds = [statistics.median(timed[n].samples) if n in timed
               else (0.0 if statuses[n] == "input" else None) for n in index]
    layers = pd.DataFrame({
        "type": [graph.nodes[n]["type"] for n in index],
        "t_measured_s": pd.Series(seconds, index=index, dtype="Float64"),
        "status": [statuses[n] for n in index],
        "note": [notes[n] for n in index],
    }, index=index)
    return Latency(layers, statistics.median(whole.samples), batch_size,
                   keras.backend.backend())


def _prepare_model(model: Any, graph: Any, batch_size: int, warmup: int, min_sample: float,
                   rng: Any) -> _Timed:
    """The whole model on random inputs (inference mode), ready to time."""
    inputs = []
    for node_id in graph.graph["inputs"]:
        data = graph.nodes[node_id]
        inputs.append(_random_input((batch_size, *data["output_shapes"][0]), data["dtype"],
                                    rng))
    run = _compiled(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
    try:
        return _prepare(run, inputs, warmup, min_sample)
    except Exception as exc:  # noqa: BLE001 - the model itself must run
        raise ModelStatsError(f"The model could not run on random inputs of its shapes: "
                              f"{type(exc).__name__}: {exc}") from None


def rank_correlation(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks (ties get their mean
    rank), with pandas alone (its own ``method="spearman"`` needs scipy for two Series).

    >>> round(rank_correlation([1, 2, 3, 4], [10, 20, 40, 30]), 6)
    0.8
    """
    import pandas as pd

    x = pd.Series(list(a), dtype="float64").rank()
    y = pd.Series(list(b), dtype="float64").rank()
    if len(x) != len(y) or len(x) < 2:
        raise OptionError(f"rank_correlation needs two sequences of equal length >= 2; "
                          f"received {len(x)} and {len(y)} values.")
    return float(x.corr(y))

