"""What a run costs, as DCASE Task 4 asks every system to report (since 2023): parameters,
MACs of one 10 s clip at inference, and the wall time and energy (kWh) of each phase.

* :func:`parameter_counts` and :func:`count_macs` / :func:`clip_macs`: the inference network
  (:func:`inference_network`: front end + model; an ensemble's members). MACs are counted by
  torch's own FLOP counter, :class:`torch.utils.flop_counter.FlopCounterMode` (matmul,
  convolution, attention: MACs = FLOPs / 2); element-wise operations and the STFT are not
  counted.
* :class:`EnergyMeter`: a context manager around CodeCarbon's ``OfflineEmissionsTracker``
  (no network: country from ``cost.country_iso_code``, nothing saved, its log quiet). It never
  raises: a tracker that fails leaves its figures ``null`` with the reason, and a warning.
  ``method`` says what gave the figure: ``RAPL`` (the CPU's energy counters), ``TDP estimate``
  (CodeCarbon's model of the CPU's TDP times its load, where the machine exposes no power
  counters, as in most VMs), ``TDP constant``, ... (``+ NVML`` with NVIDIA GPUs).
* :class:`RunCost`: the record of a job (training or ``predict``): the network's figures and
  each phase's ``wall_s`` / ``energy_kwh``; written as ``cost.json`` (:data:`COST_FILE`), and
  as flat ``cost/<figure>`` values (:meth:`RunCost.flat`) for the W&B summary, the ablation
  report and the benchmarks (:func:`read_cost` reads them back; ``{}`` for older runs).

Settings: the ``cost`` config group (``conf/cost/default.yaml``; ``cost=none`` or
``cost.enabled=false``: nothing measured, no ``cost.json``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sed_lightning.run_files import COST_FILE

log = logging.getLogger(__name__)

#: The settings of ``conf/cost/default.yaml`` (what a missing key falls back to).
DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "energy": True,
    "country_iso_code": "FRA",
    "tracking_mode": "process",
    "measure_power_secs": 15.0,
    "clip_seconds": 10.0,
}
MAC_COUNTER = (
    "torch.utils.flop_counter.FlopCounterMode, MACs = FLOPs / 2 (matmul, convolution, "
    "attention; element-wise operations and the STFT not counted)"
)
#: The phases' order in ``cost.json`` and their meaning.
PHASES = {
    "fit": "trainer.fit (training and its validations)",
    "test": "trainer.test of the tested (best) checkpoint",
    "val_scores": "the validation set scored with the tested weights (val_scores/)",
    "tune": "post-processing tuned on validation and the test scored with it",
    "predict": "predict: reading, scoring and decoding the audio",
}


#: The cost columns of the ablation report and the benchmark tables (``cost/`` figures of
#: :meth:`RunCost.flat`) and their headers.
COST_COLUMNS = {
    "cost/params_total": "params",
    "cost/macs_per_clip": "MACs / 10 s clip",
    "cost/fit_kwh": "train kWh",
    "cost/test_kwh": "test kWh",
    "cost/fit_s": "fit time",
}


def fmt_cost(name: str, value: float | None) -> str:
    """A cost figure for a table: counts with k / M / G, kWh with 2 significant digits,
    seconds as s / min / h; ``""`` when missing (a run made before ``cost.json``).

    >>> [fmt_cost(k, v) for k, v in [("cost/params_total", 6968), ("cost/macs_per_clip",
    ...     2.81e9), ("cost/fit_kwh", 2.4e-06), ("cost/fit_s", 5400.0), ("cost/fit_s", None)]]
    ['6.97 k', '2.81 G', '2.4e-06', '1.5 h', '']
    """
    if value is None or value != value:  # None or NaN
        return ""
    if name.endswith("_kwh"):
        return f"{value:.2g}"
    if name.endswith("_s"):
        for unit, size in (("h", 3600), ("min", 60)):
            if value >= size:
                return f"{value / size:.1f} {unit}"
        return f"{value:.1f} s"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.3g}"


def settings_of(cost: Any) -> dict[str, Any] | None:
    """The ``cost`` config node with defaults filled in; ``None`` when off (``cost=none``,
    ``cost.enabled=false``).

    >>> settings_of({"enabled": True, "country_iso_code": "DEU"})["country_iso_code"]
    'DEU'
    >>> settings_of(None), settings_of({"enabled": False})
    (None, None)
    """
    if cost is None:
        return None
    from sed_lightning.common import plain

    values = {**DEFAULTS, **plain(cost)}
    return values if values["enabled"] else None


# ---------------------------------------------------------------- the network


def inference_network(module: nn.Module) -> nn.Module:
    """The modules a prediction runs through: a :class:`SEDModule`'s front end + model (not
    its loss terms: a mean teacher's copy, a label-constraint projection), every member's of an
    ensemble (``members``), else ``module`` itself."""
    members = getattr(module, "members", None)
    if isinstance(members, nn.ModuleList):
        return nn.ModuleList([inference_network(m) for m in members])
    frontend, model = getattr(module, "frontend", None), getattr(module, "model", None)
    if isinstance(frontend, nn.Module) and isinstance(model, nn.Module):
        return nn.ModuleList([frontend, model])
    return module


def parameter_counts(net: nn.Module) -> dict[str, int]:
    """Total and trainable (``requires_grad``) parameters of ``net`` (shared ones once).

    >>> parameter_counts(torch.nn.Linear(10, 4))
    {'total': 44, 'trainable': 44}
    """
    params = list(net.parameters())
    return {
        "total": sum(p.numel() for p in params),
        "trainable": sum(p.numel() for p in params if p.requires_grad),
    }


def count_macs(net: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass of ``net`` on ``inputs`` (eval mode, no
    gradient, eagerly even when compiled; its mode is restored): FLOPs / 2 of torch's FLOP
    counter (bias additions and element-wise operations are not counted).

    Shape:
        - inputs: what ``net`` takes, e.g. audio ``(batch, samples)``

    >>> count_macs(torch.nn.Linear(10, 4), torch.zeros(3, 10))  # 3 rows x 10 x 4
    120
    """
    training = net.training
    net.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            torch.compiler.disable(lambda: net(*inputs))()
    finally:
        net.train(training)
    return counter.get_total_flops() // 2


def clip_macs(net: nn.Module, sample_rate: int, seconds: float = 10.0) -> int:
    """MACs of ``net`` (waveform in) on one clip of ``seconds`` at ``sample_rate``, on the
    device of its parameters. The clip is noise from a generator of its own: the global
    random state (hence the training) is untouched."""
    param = next(net.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    generator = torch.Generator().manual_seed(0)
    audio = torch.randn(1, int(round(seconds * sample_rate)), generator=generator)
    return count_macs(net, audio.to(device))


# ---------------------------------------------------------------- energy


def energy_method(hardware: list[Any]) -> tuple[str, str]:
    """``(method, detail)`` of a CodeCarbon tracker's hardware list (``tracker._hardware``):
    what its figures come from, e.g. ``("TDP estimate", "CPU: TDP estimate (85 W generic
    TDP x CPU load, AMD EPYC); RAM: estimate from the memory size")``.

    >>> cpu = type("CPU", (), {"_mode": "intel_rapl", "_model": "Xeon"})()
    >>> energy_method([cpu])
    ('RAPL', 'CPU: RAPL energy counters (Xeon)')
    """
    short: list[str] = []
    detail: list[str] = []
    for item in hardware:
        kind = type(item).__name__
        if kind == "CPU":
            mode, model = getattr(item, "_mode", "?"), getattr(item, "_model", None) or "?"
            tdp = getattr(item, "_tdp", None)
            generic = " generic" if getattr(item, "_is_generic_tdp", False) else ""
            name, text = {
                "intel_rapl": ("RAPL", f"RAPL energy counters ({model})"),
                "windows_emi": ("RAPL", f"RAPL energy counters via Windows EMI ({model})"),
                "intel_power_gadget": ("Power Gadget", f"Intel Power Gadget ({model})"),
                "cpu_load": (
                    "TDP estimate",
                    f"TDP estimate ({tdp} W{generic} TDP x CPU load, {model})",
                ),
                "constant": ("TDP constant", f"TDP constant ({tdp} W{generic}, {model})"),
            }.get(mode, (str(mode), f"{mode} ({model})"))
            short.append(name)
            detail.append(f"CPU: {text}")
        elif kind == "GPU":
            short.append("NVML")
            detail.append("GPU: power counters (NVML / AMD SMI)")
        elif kind == "AppleSiliconChip":
            short.append("powermetrics")
            detail.append(f"{getattr(item, 'chip_part', 'chip')}: Apple powermetrics")
        elif kind == "Raspberry":
            short.append("PMIC")
            detail.append("Raspberry Pi PMIC readings")
        elif kind == "RAM":
            forced = getattr(item, "_force_ram_power", None)
            detail.append(
                f"RAM: constant {forced} W" if forced else "RAM: estimate from the memory size"
            )
    return " + ".join(dict.fromkeys(short)) or "unknown", "; ".join(detail) or "unknown"


def make_tracker(settings: Mapping[str, Any], output_dir: str | Path | None = None) -> Any:
    """CodeCarbon's ``OfflineEmissionsTracker`` for ``settings`` (:data:`DEFAULTS`): no
    network (offline; no API, no HTTP endpoint), nothing written, log level ``error``."""
    logging.getLogger("codecarbon").setLevel(logging.ERROR)  # its first lines come before
    from codecarbon import OfflineEmissionsTracker

    options: dict[str, Any] = {
        "project_name": "sed-lightning",
        "country_iso_code": settings["country_iso_code"],
        "tracking_mode": settings["tracking_mode"],
        "measure_power_secs": float(settings["measure_power_secs"]),
        "output_methods": [],  # no CSV, API, logger, Prometheus or Logfire output
        "emissions_endpoint": None,
        "api_call_interval": -1,
        "allow_multiple_runs": True,  # no lock file: runs side by side are fine
        "log_level": "error",
    }
    if output_dir is not None and Path(output_dir).is_dir():
        options["output_dir"] = str(output_dir)
    return OfflineEmissionsTracker(**options)


class EnergyMeter:
    """Energy of the code in its ``with`` block (CodeCarbon's offline tracker); never
    raises. After the block, :attr:`result`: ``energy_kwh`` (with ``cpu_kwh``, ``gpu_kwh``,
    ``ram_kwh``, ``emissions_kg``), ``method`` and ``method_detail``
    (:func:`energy_method`), and ``missing``: ``None``, or why the figures are ``null``."""

    def __init__(self, settings: Mapping[str, Any], output_dir: str | Path | None = None):
        self.settings = settings
        self.output_dir = output_dir
        self.tracker: Any = None
        self.missing: str | None = None
        self.result: dict[str, Any] = {}

    def __enter__(self) -> EnergyMeter:
        try:
            self.tracker = make_tracker(self.settings, self.output_dir)
            self.tracker.start()
        except Exception as err:  # never fail a run for its energy figure
            self._fail("start", err)
        return self

    def __exit__(self, *exc: Any) -> bool:
        data = None
        if self.tracker is not None:
            try:
                self.tracker.stop()
                data = getattr(self.tracker, "final_emissions_data", None)
                if data is None:
                    self.missing = "the tracker recorded nothing (CodeCarbon's log says why)"
            except Exception as err:
                self._fail("stop", err)
        self.result = self._figures(data)
        return False  # an error of the block itself goes on

    def _fail(self, step: str, err: Exception) -> None:
        self.missing = f"CodeCarbon failed to {step}: {type(err).__name__}: {err}"
        self.tracker = None
        log.warning("energy not measured: %s", self.missing)

    def _figures(self, data: Any) -> dict[str, Any]:
        if data is None or self.missing:
            none = dict.fromkeys(("energy_kwh", "cpu_kwh", "gpu_kwh", "ram_kwh", "emissions_kg"))
            return {**none, "method": None, "missing": self.missing or "not measured"}
        method, detail = energy_method(list(getattr(self.tracker, "_hardware", None) or []))
        return {
            "energy_kwh": float(data.energy_consumed),
            "cpu_kwh": float(data.cpu_energy),
            "gpu_kwh": float(data.gpu_energy),
            "ram_kwh": float(data.ram_energy),
            "emissions_kg": float(data.emissions),
            "method": method,
            "method_detail": detail,
            "tracking_mode": getattr(data, "tracking_mode", None),
            "cpu_model": getattr(data, "cpu_model", None),
            "gpu_model": getattr(data, "gpu_model", None) or None,
            "missing": None,
        }


# ---------------------------------------------------------------- the record


class RunCost:
    """The cost record of a job: the network (:meth:`count_network`), then each phase
    (:meth:`phase`), then :meth:`write` (``cost.json``) and :meth:`flat`.

    ``settings``: the ``cost`` config node (``None`` or ``enabled: false``: every method does
    nothing); ``active``: false on processes other than global rank 0.
    """

    def __init__(self, settings: Any, active: bool = True, output_dir: str | Path | None = None):
        self.settings = settings_of(settings) if active else None
        self.output_dir = output_dir
        self.network: dict[str, Any] = {}
        self.phases: dict[str, dict[str, Any]] = {}
        self.extra: dict[str, Any] = {}

    @property
    def enabled(self) -> bool:
        return self.settings is not None

    def count_network(self, module: nn.Module, sample_rate: int) -> None:
        """Parameters and MACs per clip of ``module``'s :func:`inference_network`; a count
        that fails is ``null`` with its reason (a warning), never an error."""
        if not self.enabled:
            return
        seconds = float(self.settings["clip_seconds"])
        self.network = {"params": None, "macs_per_clip": None, "clip_seconds": seconds}
        try:
            self.network["params"] = parameter_counts(inference_network(module))
            self.network["macs_per_clip"] = clip_macs(module, sample_rate, seconds)
            self.network["mac_counter"] = MAC_COUNTER
        except Exception as err:
            self.network["missing"] = f"{type(err).__name__}: {err}"
            log.warning("MACs not counted: %s", self.network["missing"])

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time (``wall_s``) and meter (:class:`EnergyMeter`, unless ``cost.energy=false``)
        the ``with`` block as phase ``name`` (:data:`PHASES`)."""
        if not self.enabled:
            yield
            return
        meter = EnergyMeter(self.settings, self.output_dir) if self.settings["energy"] else None
        if meter is not None:
            meter.__enter__()
        start = time.perf_counter()
        try:
            yield
        finally:
            wall = time.perf_counter() - start
            if meter is not None:
                meter.__exit__(None, None, None)
                figures = meter.result
            else:
                figures = {"energy_kwh": None, "missing": "cost.energy=false"}
            self.phases[name] = {"wall_s": wall, **figures}

    def record(self) -> dict[str, Any]:
        """What ``cost.json`` holds."""
        settings = self.settings or {}
        return {
            **self.network,
            **self.extra,
            "phases": self.phases,
            "phase_meaning": {k: PHASES[k] for k in self.phases if k in PHASES},
            "energy_tracker": {
                "tool": f"codecarbon {_codecarbon_version()} OfflineEmissionsTracker",
                **{k: settings.get(k) for k in ("country_iso_code", "tracking_mode")},
            },
            "method": self.method(),
        }

    def method(self) -> str | None:
        """The energy method of the phases (``None``: no phase measured)."""
        methods = [p["method"] for p in self.phases.values() if p.get("method")]
        return " / ".join(dict.fromkeys(methods)) or None

    def flat(self) -> dict[str, Any]:
        """The figures as flat ``cost/<name>`` values (W&B summary, report, benchmarks); a
        figure that is missing is left out.

        >>> cost = RunCost({"enabled": True, "energy": False})
        >>> with cost.phase("fit"):
        ...     pass
        >>> sorted(cost.flat())
        ['cost/fit_s']
        """
        out: dict[str, Any] = {}
        params = self.network.get("params") or {}
        for key in ("total", "trainable"):
            if key in params:
                out[f"cost/params_{key}"] = params[key]
        if self.network.get("macs_per_clip") is not None:
            out["cost/macs_per_clip"] = self.network["macs_per_clip"]
            out["cost/clip_seconds"] = self.network["clip_seconds"]
        for name, phase in self.phases.items():
            out[f"cost/{name}_s"] = phase["wall_s"]
            if phase.get("energy_kwh") is not None:
                out[f"cost/{name}_kwh"] = phase["energy_kwh"]
        for key, value in self.extra.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[f"cost/{key}"] = value
        if self.method():
            out["cost/energy_method"] = self.method()
        return out

    def write(self, path: str | Path) -> Path | None:
        """Write :meth:`record` to ``path`` (a ``.json`` file, else a folder: its
        ``cost.json``); ``None`` when off."""
        if not self.enabled:
            return None
        path = Path(path)
        path = path if path.suffix == ".json" else path / COST_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.record(), indent=2, default=str) + "\n")
        return path

    def summary(self) -> str:
        """One log line: parameters, MACs, each phase's time and energy."""
        flat = self.flat()
        parts = []
        if "cost/params_total" in flat:
            parts.append(f"{flat['cost/params_total'] / 1e6:.3g} M params")
        if "cost/macs_per_clip" in flat:
            seconds = flat["cost/clip_seconds"]
            parts.append(f"{flat['cost/macs_per_clip'] / 1e9:.3g} GMACs / {seconds:g} s clip")
        for name, phase in self.phases.items():
            kwh = phase.get("energy_kwh")
            energy = f"{kwh:.3g} kWh" if kwh is not None else "kWh n/a"
            parts.append(f"{name} {phase['wall_s']:.1f} s, {energy}")
        method = self.method()
        return "cost: " + ", ".join(parts) + (f" (energy: {method})" if method else "")


def _codecarbon_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("codecarbon")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def log_summary(loggers: Any, figures: Mapping[str, Any]) -> None:
    """Put ``figures`` (:meth:`RunCost.flat`) into the summary of every W&B logger among
    ``loggers``; a failure is a warning."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers or []:
        if isinstance(logger, WandbLogger) and figures:
            try:
                logger.experiment.summary.update(dict(figures))
            except Exception as err:
                log.warning("cost not written to the W&B summary: %s", err)


def read_cost(folder: str | Path) -> dict[str, Any]:
    """A run folder's ``cost.json`` as flat ``cost/<name>`` figures (:meth:`RunCost.flat`);
    ``{}`` without the file (runs made before it existed) or when it cannot be read."""
    path = Path(folder) / COST_FILE
    if not path.is_file():
        return {}
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    cost = RunCost(None)
    cost.network = {k: saved.get(k) for k in ("params", "macs_per_clip", "clip_seconds")}
    cost.phases = {
        name: phase
        for name, phase in (saved.get("phases") or {}).items()
        if isinstance(phase, dict) and "wall_s" in phase
    }
    return cost.flat()
