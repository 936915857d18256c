"""The study's session state: options resolved, data, pretrained and compressed models cached for the tests.

Benchmarks run model by model (train group, then inference group), so the caches keep one model at a time:
moving on to the next model frees the previous one's copies (vgg16 alone is 0.5 GB per copy).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from . import zoo
from .data import DataSource
from .profiles import Profile

# Compressions quicker than this are redone rather than stored: reading a big model back costs about as much.
CACHE_MIN_SECONDS = 2.0


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


@dataclass
class Compressed:
    """A compressed model ready to copy, its training dtype and the facts recorded in extra_info."""

    model: Any
    dtype: Any
    info: dict[str, Any] = field(default_factory=dict)


class Study:
    def __init__(self, config: StudyConfig, device: Any) -> None:
        self.config = config
        self.profile = config.profile
        self.device = device
        self._data: dict[int, Any] = {}
        self._pretrained: dict[str, tuple[Any, dict[str, Any]]] = {}
        self._compressed: dict[tuple[str, str], Compressed] = {}

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
        import torch

        from energy_bench import compress

        path = self._compressed_cache_path(name, spec, weights_info)
        if path is not None and path.exists():
            try:
                saved = torch.load(path, map_location=self.device, weights_only=False)  # our own pickled module
                result = compress.CompressionResult(saved["model"], saved["details"], saved["dtype"], spec)
                return result, saved["seconds"], True
            except Exception:  # stale or partial file (e.g. another torch version): recompute
                pass
        start = time.perf_counter()
        result = compress.apply(base, spec, eval_fn=lambda m: self.evaluate(m, name), example_input=example)
        seconds = time.perf_counter() - start
        if path is not None and seconds >= CACHE_MIN_SECONDS:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            torch.save(
                {"model": result.model, "details": result.details, "dtype": result.dtype, "seconds": seconds}, tmp
            )
            os.replace(tmp, path)
        return result, seconds, False

    def _compressed_cache_path(self, name: str, spec: Any, weights_info: dict[str, Any]) -> Any | None:
        """A file per (weights, spec, data, evaluation set): only for weights that are themselves reproducible."""
        import torch

        from .weights import cache_dir

        if weights_info.get("source") not in ("self", "pretrained"):
            return None
        ident = {
            "weights": {k: weights_info.get(k) for k in ("source", "cache_key", "weights", "path")},
            "spec": spec.text,
            "data": self.config.data.label,
            "size": self.image_size(name),
            "test": self.profile.test_samples,
            "seed": self.profile.seed,
            "torch": torch.__version__,
        }
        digest = hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]
        safe = "".join(c if c.isalnum() else "_" for c in spec.text)
        return cache_dir() / "compressed" / f"{name}-{safe}-{digest}.pt"

    def fresh_copy(self, compressed: Compressed) -> Any:
        return copy.deepcopy(compressed.model)
