"""Experiment configuration: profiles, overrides and validation.

Every experiment declares a list of :class:`Param` (its schema) and a value table per profile
(``smoke`` / ``quick`` / ``paper``).  :func:`resolve` merges a profile with overrides and returns a
frozen, validated :class:`Config`.  Anything wrong (unknown key, wrong type, value out of range) raises
:class:`ConfigError` with a message that says what to do, before any work starts.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from .catalog import DATASETS as _DATASETS
from .catalog import MODELS as _MODELS
from .specs import DATA, MODEL, TRAINING, TrainSpec

PROFILES = ("smoke", "quick", "paper")
DEFAULT_PROFILE = "quick"
PROFILE_ENV = "MEMLIB_PROFILE"

DATASETS = tuple(_DATASETS)
MODELS = tuple(_MODELS)
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")


class ConfigError(ValueError):
    """A parameter or profile is invalid; the message says which and how to fix it."""


def bounds(low: float | None = None, high: float | None = None, *, low_open: bool = False, high_open: bool = True,
           why: str = "") -> Callable[[str, Any], None]:
    """A range check for :class:`Param`: ``check(name, value)`` raises :class:`ConfigError` outside the range.

    The check's ``range`` attribute is the range as text (``[0, 1)``, ``> 0``), which ``memlib params`` prints;
    ``why`` is added to the error message.
    """
    if low is not None and high is not None:
        text = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        text = f"{'>' if low_open else '>='} {low:g}"
    elif high is not None:
        text = f"{'<' if high_open else '<='} {high:g}"
    else:
        raise ValueError("bounds() needs a low or a high end")

    def check(name: str, v: float) -> None:
        above = low is None or (v > low if low_open else v >= low)
        below = high is None or (v < high if high_open else v <= high)
        if not (above and below):
            raise ConfigError(f"{name} must be {text}{f' ({why})' if why else ''}, got {v!r}")

    check.range = text.removeprefix("in ")
    return check


check_rate = bounds(0, 1)  # [0, 1): noise rates, momentum, dropout probabilities
check_positive = bounds(0, low_open=True)  # > 0
check_nonneg = bounds(0)  # >= 0
check_fraction = bounds(0, 1, low_open=True, high_open=False)  # (0, 1]


SEED_LIMIT = 2 ** 32  # numpy's generators take seeds below 2**32; torch's take any 64-bit value


def check_seed(name: str, v: int) -> None:
    """Seeds are in ``[0, 2**32)``: every generator memlib seeds (torch, numpy, Python) accepts that range."""
    if not 0 <= v < SEED_LIMIT:
        raise ConfigError(f"{name} must be in [0, 2**32) = [0, {SEED_LIMIT - 1}], got {v!r}")


check_seed.range = "[0, 2**32)"


def check_device(name: str, v: str) -> None:
    """A named device must exist on this machine (checked when the config is resolved, not after loading data)."""
    if v in ("auto", "cpu"):
        return
    import torch

    if v == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{name}='cuda' but no CUDA GPU is visible on this machine; use {name}=auto or "
                          f"{name}=cpu")
    if v == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"{name}='mps' but MPS is not available on this machine; use {name}=auto or {name}=cpu")


def train_size(values: Mapping[str, Any]) -> int:
    """How many training examples a configuration trains on: ``n_train``, or the whole training set of its
    ``dataset`` (from :mod:`memlib.catalog`) when ``n_train`` is 0 or larger than that."""
    n, pool = values["n_train"], _DATASETS[values["dataset"]].train_size
    return pool if n == 0 or n > pool else n


def check_flips_labels(values: Mapping[str, Any], experiment: str) -> None:
    """Raise unless ``noise_rate`` flips at least one training label (``int(rate * n_train) >= 1``).

    For experiments whose claim is about mislabeled examples; ``n_train`` 0 (or more than the dataset has)
    means the whole training set (its size from :mod:`memlib.catalog`).
    """
    rate, n = values["noise_rate"], train_size(values)
    if rate <= 0:
        raise ConfigError(f"{experiment} needs mislabeled examples: set noise_rate > 0 (e.g. 0.1)")
    if n and int(rate * n) < 1:
        raise ConfigError(f"noise_rate={rate} flips no label of n_train={n} examples (int(rate * n_train) = 0); "
                          f"{experiment} needs mislabeled examples: use noise_rate >= {1 / n:.3g} or a larger n_train")


@dataclass(frozen=True)
class Param:
    """One parameter of an experiment.

    ``type`` is one of ``int``, ``float``, ``bool``, ``str``; ``choices`` restricts values;
    ``check(name, value)`` raises :class:`ConfigError` for values out of range; ``hashed=False``
    marks parameters that do not change results (e.g. progress bars) and so stay out of the cache key.
    """

    name: str
    type: type
    help: str
    choices: tuple | None = None
    check: Callable[[str, Any], None] | None = None
    hashed: bool = True
    nullable: bool = False
    unit: str = ""

    def coerce(self, value: Any) -> Any:
        """Convert ``value`` (possibly a string from the command line) to this parameter's type."""
        if value is None:
            if self.nullable:
                return None
            raise ConfigError(f"parameter {self.name!r} may not be None")
        t = self.type
        if isinstance(value, str) and t is not str:
            value = _parse_str(self.name, value, t)
        if t is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"parameter {self.name!r} expects true/false, got {value!r}")
        elif t is int:
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise ConfigError(f"parameter {self.name!r} expects an integer, got {value!r}")
        elif t is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"parameter {self.name!r} expects a number, got {value!r}")
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(f"parameter {self.name!r} must be a finite number, got {value!r}")
        elif t is str:
            if not isinstance(value, str):
                raise ConfigError(f"parameter {self.name!r} expects a string, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(
                f"unknown {self.name} {value!r}; choose one of: {', '.join(map(str, self.choices))}"
            )
        if self.check is not None:
            self.check(self.name, value)
        return value


def _parse_str(name: str, s: str, t: type) -> Any:
    s = s.strip()
    if t is bool:
        low = s.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"parameter {name!r} expects true/false, got {s!r}")
    try:
        if t is int:
            return int(s)
        if t is float:
            return float(s)
    except ValueError:
        raise ConfigError(f"parameter {name!r} expects {t.__name__}, got {s!r}") from None
    return s


# Parameters shared by the experiments, in groups named after memlib.specs' fields (data, model, training) plus
# the run group (seeds, device, progress).  An experiment's schema is ``common("data", "model", "training", "run")``
# plus its own parameters.
COMMON: dict[str, Param] = {p.name: p for p in [
    Param("dataset", str, "dataset name", choices=DATASETS),
    Param("noise_rate", float, "fraction of training labels flipped to a different class", check=check_rate,
          unit="fraction of examples"),
    Param("n_train", int, "number of training examples (0 = the whole training set)", check=check_nonneg,
          unit="examples"),
    Param("n_test", int, "number of test examples (0 = the whole test set)", check=check_nonneg, unit="examples"),
    Param("model", str, "model architecture", choices=MODELS),
    Param("width", int, "base channel width of the model (64 = the paper's ResNet9)", check=check_positive,
          unit="channels"),
    Param("epochs", int, "training epochs", check=check_positive, unit="passes over the training set"),
    Param("batch_size", int, "mini-batch size", check=check_positive, unit="examples per step"),
    Param("lr", float, "peak learning rate (after the warm-up)", check=check_positive, unit="per step"),
    Param("momentum", float, "SGD momentum (plain, heavy-ball)", check=check_rate),
    Param("weight_decay", float, "L2 weight decay", check=check_nonneg, unit="L2 coefficient"),
    Param("warmup_frac", float, "fraction of iterations with linear warm-up before cosine decay", check=check_rate,
          unit="fraction of iterations"),
    Param("augment", bool, "random crop + horizontal flip during training (no flip for digits)"),
    Param("precision", str, "training arithmetic: 'auto' = bf16 autocast where a timed probe finds it faster "
          "(always on CUDA), else fp32; claim 1 trains in fp32 under 'auto'; the smoke and quick profiles say fp32, "
          "so that a verdict reads the same on every CPU", choices=PRECISIONS),
    Param("seed", int, "random seed (data noise, initialisation, batch order), in [0, 2**32)", check=check_seed),
    Param("seeds", int, "number of seeds to run (seed, seed+1, ...)", check=check_positive),
    Param("seed_stages", bool, "add seeds in the analysis plan's stages while an essential criterion or a "
          "precondition is undecided (memlib.plan; off: exactly `seeds` seeds)", hashed=False),
    Param("device", str, "compute device ('auto' picks cuda > mps > cpu)", choices=DEVICES, check=check_device),
    Param("progress", bool, "show progress bars", hashed=False),
]}
RUN = ("seed", "seeds", "seed_stages", "device", "progress")
GROUPS = {"data": DATA, "model": MODEL, "training": TRAINING, "run": RUN}


def common(*groups: str) -> list[Param]:
    """The common parameters of the named groups (``data``, ``model``, ``training``, ``run``), in order."""
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ValueError(f"unknown parameter group {unknown[0]!r}; choose from: {', '.join(GROUPS)}")
    return [COMMON[n] for g in groups for n in GROUPS[g]]


def group_of(name: str) -> str:
    """The group a parameter belongs to (``data``, ``model``, ``training``, ``run``), else ``experiment``."""
    return next((g for g, names in GROUPS.items() if name in names), "experiment")


# The smoke and quick profiles (the book on a CPU) train in fp32: bf16 autocast is faster on some CPUs and slower on
# others, and it moves the numbers a verdict reads (claim 4's word changed with it), so the book's verdicts are
# computed in the same arithmetic on every CPU; `-p precision=auto` or `bf16` asks for the faster one.
CPU_BOOK = {"precision": "fp32"}


def paper_values(training: TrainSpec, **values: Any) -> dict[str, Any]:
    """Profile values: the training group of a paper's :class:`~memlib.specs.TrainSpec`, seeds added in the analysis
    plan's stages (``seed_stages``), then ``values``."""
    return {**{n: getattr(training, n) for n in TRAINING}, "seed_stages": True, **values}


@dataclass(frozen=True)
class Config:
    """A resolved, validated and immutable experiment configuration.

    Values are read as attributes (``cfg.epochs``) or by key (``cfg["epochs"]``).
    """

    experiment: str
    profile: str
    values: Mapping[str, Any]
    unhashed: frozenset = field(default_factory=frozenset)
    # The schema and validation hook it was built with, so that :meth:`replace` needs no registry lookup.
    _schema: tuple = field(default=(), compare=False, repr=False)
    _validate: Callable[[dict], None] | None = field(default=None, compare=False, repr=False)

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "values")
        if name in values:
            return values[name]
        raise AttributeError(f"{self.experiment} config has no parameter {name!r}")

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def hashed_dict(self) -> dict[str, Any]:
        """The values that determine results (what the results store keys on)."""
        d = {k: v for k, v in self.values.items() if k not in self.unhashed}
        return {"experiment": self.experiment, **d}

    def key(self) -> str:
        blob = json.dumps(self.hashed_dict(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def replace(self, **overrides: Any) -> "Config":
        """A new Config with some values changed (validated like :func:`memlib.experiments.resolve`)."""
        merged = {**self.values, **overrides}
        return build(self.experiment, self.profile, list(self._schema), merged, self._validate)

    def __repr__(self) -> str:  # short and readable in notebooks
        inner = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"Config({self.experiment}, profile={self.profile}, {inner})"


def default_profile() -> str:
    return os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def build(experiment: str, profile: str, params: list[Param], values: Mapping[str, Any],
          validate: Callable[[dict], None] | None = None) -> Config:
    schema = {p.name: p for p in params}
    unknown = [k for k in values if k not in schema]
    if unknown:
        k = unknown[0]
        raise ConfigError(
            f"unknown parameter {k!r} for experiment {experiment!r}{_suggest(k, schema)}; "
            f"valid parameters: {', '.join(sorted(schema))}"
        )
    missing = [k for k in schema if k not in values]
    if missing:
        raise ConfigError(f"experiment {experiment!r}, profile {profile!r}: no value for {', '.join(missing)}")
    out = {name: schema[name].coerce(values[name]) for name in schema}
    if "seed" in out and "seeds" in out and out["seed"] + out["seeds"] > SEED_LIMIT:
        raise ConfigError(f"seed + seeds must stay below 2**32 (seeds run seed, seed+1, ...), got seed={out['seed']}"
                          f", seeds={out['seeds']}")
    if validate is not None:
        validate(out)
    unhashed = frozenset(p.name for p in params if not p.hashed)
    return Config(experiment=experiment, profile=profile, values=out, unhashed=unhashed, _schema=tuple(params),
                  _validate=validate)


def parse_overrides(pairs: Iterable[str]) -> dict[str, str]:
    """Parse command-line ``key=value`` pairs (values stay strings; :func:`resolve` converts them)."""
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"parameter {pair!r} must look like key=value (e.g. -p epochs=30)")
        k, v = pair.split("=", 1)
        out[k.strip()] = v
    return out
