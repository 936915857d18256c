"""The study's session state: options resolved, data, pretrained and compressed models cached for the tests.

Benchmarks run model by model (train group, then inference group), so the caches keep one model at a time:
moving on to the next model frees the previous one's copies (vgg16 alone is 0.5 GB per copy).

Compressions that take a while are also cached on disk (``stored``: a state dict and a recipe, never a pickled
module) under a key made of what they were computed from: the starting weights by content, the spec, the data set
by content, the evaluation set, and the versions of energy-bench, the compressor's code, torch, torchvision and
torch-pruning.
"""

from __future__ import annotations

import copy
import functools
import importlib
import time
from dataclasses import dataclass, field
from typing import Any

from . import zoo
from .data import DataSource
from .profiles import Profile

# Compressions quicker than this are redone rather than stored: reading a big model back costs about as much.
CACHE_MIN_SECONDS = 2.0
# Accuracies are ratios of counts: the target threshold absorbs float noise of "baseline - tolerance".
ACCURACY_EPS = 1e-9


@dataclass(frozen=True)
class StudyConfig:
    """Validated study options (pure Python; built at pytest_configure)."""

    profile: Profile
    models: tuple[str, ...]
    compressors: tuple[Any, ...]  # energy_bench.compress.Spec
    data: DataSource
    weights: str | None  # None = the profile's default

    @property
    def weights_source(self) -> str:
        return self.weights or self.profile.weights


@dataclass(frozen=True)
class AccuracyTarget:
    """What every compressor of a model fine-tunes to: the baseline's accuracy after its rounds, minus a tolerance."""

    accuracy: float  # the threshold to reach
    baseline_accuracy: float
    tolerance: float
    baseline_rounds: int
    source: str  # where the baseline's accuracy came from

    def describe(self) -> dict[str, Any]:
        """Plain JSON for ``extra_info.target``."""
        return {
            "metric": "accuracy",
            "accuracy": self.accuracy,
            "baseline_accuracy": self.baseline_accuracy,
            "tolerance": self.tolerance,
            "baseline_rounds": self.baseline_rounds,
            "source": self.source,
        }


@dataclass
class Compressed:
    """A compressed model ready to copy, its training dtype and the facts recorded in extra_info."""

    model: Any
    dtype: Any
    info: dict[str, Any] = field(default_factory=dict)


class Study:
    def __init__(self, config: StudyConfig, device: Any, data: dict[int, Any] | None = None) -> None:
        self.config = config
        self.profile = config.profile
        self.device = device
        self._data: dict[int, Any] = dict(data or {})  # image size -> StudyData (the plugin's check loads one)
        self._pretrained: dict[str, tuple[Any, dict[str, Any]]] = {}
        self._compressed: dict[tuple[str, str], Compressed] = {}
        self._baseline: dict[str, tuple[float, str]] = {}  # model -> (accuracy after its rounds, where from)
        self._accuracy_before: dict[tuple[str, str], float] = {}

    # --- inputs ---------------------------------------------------------------------------------------------------
    def image_size(self, name: str) -> int:
        return zoo.input_size(name, self.profile.image_size)

    def data(self, name: str) -> Any:
        from .data import load_data

        size = self.image_size(name)
        if size not in self._data:
            self._data[size] = load_data(
                self.config.data,
                size,
                seed=self.profile.seed,
                test_fraction=self.profile.test_fraction,
                num_workers=self.profile.num_workers,
            )
        return self._data[size]

    def _focus(self, name: str) -> None:
        """Drop cached models of every other model (tests run model by model)."""
        for key in [k for k in self._pretrained if k != name]:
            del self._pretrained[key]
        for key in [k for k in self._compressed if k[0] != name]:
            del self._compressed[key]

    def pretrained(self, name: str) -> tuple[Any, dict[str, Any]]:
        """The session's pretrained ``name`` (do not train it: copy it) and where its weights came from."""
        from .weights import load_pretrained

        self._focus(name)
        if name not in self._pretrained:
            self._pretrained[name] = load_pretrained(
                name,
                self.config.weights_source,
                data=self.data(name),
                image_size=self.image_size(name),
                seed=self.profile.seed,
                profile=self.profile,
                device=self.device,
            )
        return self._pretrained[name]

    # --- work -----------------------------------------------------------------------------------------------------
    def evaluate(self, model: Any, name: str, dtype: Any = None) -> float:
        from .train import evaluate

        return evaluate(
            model,
            self.data(name),
            device=self.device,
            limit=self.profile.test_samples,
            batch_size=self.profile.eval_batch_size,
            dtype=dtype,
        )

    def train_dtype(self, compressed: Compressed) -> Any:
        """The dtype training and inference really run in (see train.training_dtype)."""
        from .train import training_dtype

        return training_dtype(self.device, compressed.dtype)[0]

    def trainer(self, model: Any, name: str, dtype: Any = None) -> Any:
        import torch

        from .train import Trainer

        torch.manual_seed(self.profile.seed)
        p = self.profile
        return Trainer(
            model,
            self.data(name),
            device=self.device,
            batch_size=p.batch_size,
            optimizer=p.optimizer,
            lr=p.lr,
            weight_decay=p.weight_decay,
            steps=p.steps_per_round,
            dtype=dtype,
            seed=p.seed,
        )

    def compressed(self, name: str, spec: Any) -> Compressed:
        """``name`` compressed by ``spec`` (cached per session), with its stats for the record."""
        from energy_bench.compress import stats

        from .train import training_dtype

        self._focus(name)
        key = (name, spec.text)
        if key not in self._compressed:
            base, weights_info = self.pretrained(name)
            data = self.data(name)
            example = data.example_input(2).to(self.device)
            result, seconds, cached = self._compress(name, spec, base, weights_info, example)
            model = result.model.to(self.device)
            one = example[:1]
            info = {
                "model": name,
                "compressor": spec.text,
                "compressor_details": result.details,
                "compress_seconds": round(seconds, 3),
                "compress_cached": cached,
                "params": stats.count_parameters(model),
                "nonzero_params": stats.count_nonzero(model),
                "multiply_adds": stats.multiply_adds(model, one),
                "dtype": str(result.dtype).replace("torch.", ""),
                "train_dtype": training_dtype(self.device, result.dtype)[1],
                "weight_bytes": stats.weight_bytes(model, result.dtype),
                "weights": weights_info,
                "data": data.source.label,
                "image_size": data.image_size,
                "profile": self.profile.name,
                "device": str(self.device),
            }
            self._compressed[key] = Compressed(model, result.dtype, info)
        return self._compressed[key]

    def _compress(
        self, name: str, spec: Any, base: Any, weights_info: dict[str, Any], example: Any
    ) -> tuple[Any, float, bool]:
        """compress.apply, cached on disk for warm runs: stego's capacity search alone is several evaluations."""
        from energy_bench import compress

        from . import stored

        ident = self._compressed_ident(name, spec, weights_info)
        path = self._compressed_cache_path(name, spec, ident)
        if path is not None:
            saved = stored.load(path, base, ident)
            if saved is not None:
                result = compress.CompressionResult(saved.model, saved.details, saved.dtype, spec)
                return result, saved.seconds, True
        start = time.perf_counter()
        result = self._apply(name, spec, base, example)
        seconds = time.perf_counter() - start
        if path is not None and seconds >= CACHE_MIN_SECONDS:
            stored.save(path, base, result, seconds, ident, example)
        return result, seconds, False

    def _apply(self, name: str, spec: Any, base: Any, example: Any) -> Any:
        """compress.apply for this device's formats, then BatchNorm statistics recomputed on train images.

        Removing channels or factorizing layers shifts every later layer's input, so the running statistics a model
        was trained with no longer fit and it scores near chance in eval mode until fine-tuning has slowly replaced
        them; recomputing them (as the ``self`` pretraining does) is part of compressing. Every compressor's model,
        the baseline's included, gets it, so none is favoured; a model whose weights are unchanged gets back the
        same statistics."""
        from energy_bench import compress

        from .train import recalibrate_batchnorm

        result = compress.apply(
            base, spec, eval_fn=lambda m: self.evaluate(m, name), example_input=example, formats=self.formats
        )
        samples = self.profile.recalibration_samples
        layers = recalibrate_batchnorm(result.model, self.data(name), device=self.device, samples=samples)
        result.details["batchnorm_recalibration"] = {"layers": layers, "train_samples": samples if layers else 0}
        return result

    def _compressed_ident(self, name: str, spec: Any, weights_info: dict[str, Any]) -> dict[str, Any] | None:
        """What a compression is computed from, by content (no paths); None when the weights have no identity."""
        from energy_bench.compress import get_compressor

        from . import stored
        from .cache import source_sha256, versions

        source = weights_info.get("source")
        if source == "self":
            weights = {"self": weights_info.get("cache_key")}
        elif source in ("pretrained", "path") and weights_info.get("sha256"):
            weights = {source: weights_info["sha256"]}
        else:
            return None  # random weights: compressing them again is as good as reading them
        compressor = get_compressor(spec.name)
        return {
            "format": stored.FORMAT,
            "model": name,
            "weights": weights,
            "spec": spec.text,
            "data": self.data(name).identity,
            "size": self.image_size(name),
            "test": self.profile.test_samples,
            "seed": self.profile.seed,
            "versions": versions(),
            "code": source_sha256(importlib.import_module(compressor.__module__)),
            "formats": [str(f) for f in self.formats],  # stego's choice depends on the device's native formats
            "recalibration": self.profile.recalibration_samples,
        }

    def _compressed_cache_path(self, name: str, spec: Any, ident: dict[str, Any] | None) -> Any | None:
        """The file for ``ident``: named by model, spec and a hash of everything it was computed from."""
        from .cache import cache_dir, content_key

        if ident is None:
            return None
        safe = "".join(c if c.isalnum() else "_" for c in spec.text)
        return cache_dir() / "compressed" / f"{name}-{safe}-{content_key(ident)}.pt"

    def fresh_copy(self, compressed: Compressed) -> Any:
        return copy.deepcopy(compressed.model)

    @functools.cached_property
    def formats(self) -> tuple[Any, ...]:
        """The 16-bit formats this session's device runs natively (stego chooses among them)."""
        from .train import native_formats

        return native_formats(self.device)

    # --- fine-tuning to the baseline's accuracy ----------------------------------------------------------------------
    def accuracy_before(self, name: str, spec: Any, compressed: Compressed) -> float:
        """Held-out accuracy of the compressed model before any fine-tuning (once per session)."""
        key = (name, spec.text)
        if key not in self._accuracy_before:
            self._accuracy_before[key] = self.evaluate(compressed.model, name, dtype=self.train_dtype(compressed))
        return self._accuracy_before[key]

    def note_baseline(self, name: str, accuracy: float, rounds: int, nodeid: str) -> None:
        """The baseline benchmark of ``name`` finished its rounds: its accuracy defines the target."""
        if rounds == self.profile.rounds:
            self._baseline[name] = (float(accuracy), f"baseline benchmark {nodeid}")

    def target(self, name: str) -> AccuracyTarget:
        """The accuracy every compressor of ``name`` fine-tunes to. Taken from the baseline benchmark when it ran in
        this session, else from fine-tuning the baseline the same way, unmeasured (once per session): the target
        never depends on which tests were selected or in what order they ran."""
        if name not in self._baseline:
            self._baseline[name] = (self._fine_tune_baseline(name), "baseline fine-tuned unmeasured (not run yet)")
        accuracy, source = self._baseline[name]
        tolerance = self.profile.accuracy_tolerance
        return AccuracyTarget(accuracy - tolerance - ACCURACY_EPS, accuracy, tolerance, self.profile.rounds, source)

    def _fine_tune_baseline(self, name: str) -> float:
        """The baseline's accuracy after the profile's rounds, trained exactly as its benchmark trains it."""
        from energy_bench.compress import parse_spec

        compressed = self.compressed(name, parse_spec("baseline"))
        model = self.fresh_copy(compressed)
        trainer = self.trainer(model, name, dtype=self.train_dtype(compressed))
        for _ in range(self.profile.rounds):
            trainer.train_one_round()
        return self.evaluate(model, name, dtype=self.train_dtype(compressed))
