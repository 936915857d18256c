"""Fine-tuning and evaluation loops.

Optimizers: AdamW (smoke profile) or SGD with momentum 0.9 (paper profile), fused kernels on CPU and CUDA;
cross-entropy loss; no schedule.
Seeds: ``torch.manual_seed(seed)`` before building anything random, and a per-round ``torch.Generator`` seeded with
(seed, round) for the order of samples, so two runs see the same batches. A compressed model may ask to train in a
narrower dtype (stego): the forward/backward pass runs under ``torch.autocast`` in that dtype while the optimizer
keeps fp32 master weights (float16 on CUDA also uses a GradScaler).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from energy_bench.meters.cpu_features import NARROW_FORMAT_FLAGS

from .data import StudyData

# Fused kernels update all parameters in one pass; on CPU the default is a per-parameter loop, which dominates a
# training step of the big classifiers (vgg16, alexnet, vit_b_16).
FUSED_DEVICES = ("cpu", "cuda")


def make_optimizer(model: torch.nn.Module, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    fused = all(p.device.type in FUSED_DEVICES and p.dtype == torch.float32 for p in params) or None
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
    raise ValueError(f"unknown optimizer {name!r}; valid: sgd, adamw")


#: CPU feature flags that mean native arithmetic in a 16-bit format (without them torch emulates it, slowly)
_CPU_FLAGS = {getattr(torch, name): flags for name, flags in NARROW_FORMAT_FLAGS.items()}


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset:
    """The CPU's feature flags, read once (training_dtype asks for every benchmark)."""
    try:
        with open("/proc/cpuinfo") as f:
            return frozenset(flag for line in f if line.startswith("flags") for flag in line.split(":", 1)[1].split())
    except OSError:
        return frozenset()


def native_formats(device: torch.device) -> tuple[torch.dtype, ...]:
    """The 16-bit formats ``device`` runs natively, narrowest mantissa first: what stego may choose (passed to
    ``compress.apply(formats=...)``) and what training_dtype autocasts to. CUDA: float16, and bfloat16 where the
    GPU supports it; a CPU: those its feature flags name (none on an AVX2-only CPU); other devices: none."""
    if device.type == "cuda":
        bf16 = (torch.bfloat16,) if torch.cuda.is_bf16_supported() else ()
        return (*bf16, torch.float16)
    if device.type == "cpu":
        flags = cpu_flags()
        return tuple(dtype for dtype, needs in _CPU_FLAGS.items() if flags & set(needs))
    return ()


def training_dtype(device: torch.device, wanted: torch.dtype | None) -> tuple[torch.dtype | None, str]:
    """The dtype to autocast to and why. A format the device does not run natively (see native_formats) is
    emulated, several times slower than float32, so there the narrow format is kept in the weights' values (the
    truncated bits stay zero) but the arithmetic runs in float32."""
    if wanted is None or wanted == torch.float32:
        return torch.float32, "float32"
    name = str(wanted).replace("torch.", "")
    if wanted not in native_formats(device):
        flags = f" ({'/'.join(_CPU_FLAGS[wanted])})" if device.type == "cpu" and wanted in _CPU_FLAGS else ""
        return torch.float32, f"float32: this {device.type.upper()} has no native {name} instructions{flags}"
    return wanted, f"autocast {name}, fp32 master weights"


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    enabled = dtype is not None and dtype != torch.float32
    return torch.autocast(device_type=device.type, dtype=dtype if enabled else None, enabled=enabled)


def _logits(output: Any) -> torch.Tensor:
    # googlenet/inception_v3 return namedtuples in training mode when aux heads exist; ours have none, but be safe.
    return output[0] if isinstance(output, tuple) else output


class Trainer:
    """Trains ``model`` on ``data``'s train split, one round at a time (a whole epoch or ``steps`` batches)."""

    def __init__(
        self,
        model: torch.nn.Module,
        data: StudyData,
        *,
        device: torch.device,
        batch_size: int,
        optimizer: str,
        lr: float,
        weight_decay: float,
        steps: int | None = None,
        dtype: torch.dtype | None = None,
        seed: int = 0,
    ) -> None:
        self.model = model.to(device)
        self.data = data
        self.device = device
        self.batch_size = batch_size
        self.steps = steps
        self.dtype = dtype
        self.seed = seed
        self.optimizer = make_optimizer(self.model, optimizer, lr, weight_decay)
        use_scaler = device.type == "cuda" and dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        self.rounds_done = 0
        self.last_loss = float("nan")

    def order(self, round_index: int) -> list:
        """Sample indices of one round: a (seed, round)-seeded permutation, cycled to fill ``steps`` batches."""
        n = len(self.data.train)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + round_index)
        if self.steps is None:
            return torch.randperm(n, generator=generator).tolist()
        needed = self.steps * self.batch_size
        chunks = [torch.randperm(n, generator=generator) for _ in range(-(-needed // n))]
        return torch.cat(chunks)[:needed].tolist()

    def warm_up_round(self) -> None:
        """One unmeasured round that leaves no trace: trains, then puts back the model's weights and buffers, the
        optimizer's state (zeroed in place, which is how AdamW and SGD without dampening start), the random state
        and the round counter.

        It warms what the measured rounds use, on their own objects: kernels for these shapes, the gradients and
        the optimizer state that the first step allocates (for vgg16 over a gigabyte, whose first touch otherwise
        lands in the first measured round). A throwaway copy could not warm those.
        """
        saved = {key: value.detach().clone() for key, value in self.model.state_dict().items()}
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None
        self.train_one_round()
        with torch.no_grad():
            self.model.load_state_dict(saved)
        for state in self.optimizer.state.values():
            for value in state.values():
                if torch.is_tensor(value):
                    value.zero_()
        if self.scaler is not None:
            self.scaler = torch.amp.GradScaler("cuda")
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        self.rounds_done = 0
        self.last_loss = float("nan")

    def train_one_round(self) -> float:
        """One round of training; returns the mean loss. Synchronizes the device at the end (for the meter)."""
        self.model.train()
        total, batches = 0.0, 0
        for images, labels in self.data.batches("train", self.order(self.rounds_done), self.batch_size):
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            self.optimizer.zero_grad(set_to_none=True)
            with _autocast(self.device, self.dtype):
                loss = torch.nn.functional.cross_entropy(_logits(self.model(images)), labels)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
            total += loss.detach().float().item()
            batches += 1
        self.rounds_done += 1
        self.last_loss = total / max(batches, 1)
        return self.last_loss


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    data: StudyData,
    *,
    device: torch.device,
    limit: int | None = None,
    batch_size: int = 128,
    dtype: torch.dtype | None = None,
) -> float:
    """Accuracy (0..1) on the first ``limit`` held-out samples (all when None)."""
    was_training = model.training
    model.eval()
    n = len(data.test) if limit is None else min(limit, len(data.test))
    correct = 0
    for images, labels in data.batches("test", range(n), batch_size):
        with _autocast(device, dtype):
            logits = _logits(model(images.to(device)))
        correct += (logits.argmax(dim=1).cpu() == labels).sum().item()
    model.train(was_training)
    return correct / n


@torch.no_grad()
def infer(
    model: torch.nn.Module,
    data: StudyData,
    *,
    device: torch.device,
    samples: int,
    batch_size: int,
    dtype: torch.dtype | None = None,
) -> int:
    """Forward ``samples`` held-out images (cycling the split if short); returns how many were run."""
    model.eval()
    n_test = len(data.test)
    order = [i % n_test for i in range(samples)]
    for images, _ in data.batches("test", order, batch_size):
        with _autocast(device, dtype):
            model(images.to(device))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return samples


@torch.no_grad()
def recalibrate_batchnorm(
    model: torch.nn.Module, data: StudyData, *, device: torch.device, samples: int = 512, batch_size: int = 64
) -> int:
    """Recompute BatchNorm running statistics as exact averages over ``samples`` train images.

    After a short from-scratch run the running averages lag far behind weights that moved fast, so a model scores
    far worse in eval mode than with batch statistics; this closes that gap.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    n = min(samples, len(data.train))
    for images, _ in data.batches("train", range(n), batch_size):
        model(images.to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)
    return len(norms)


# Part of the ``self`` weights' cache key: bump it when pretrain() changes what it produces.
PRETRAIN_RECIPE = "r2"

NORMALIZATION_LAYERS = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.LayerNorm, torch.nn.GroupNorm)


@torch.no_grad()
def scale_to_unit_variance(model: torch.nn.Module, images: torch.Tensor, skip: torch.nn.Module | None = None) -> int:
    """Data-dependent init (LSUV, Mishkin & Matas 2016, without the orthogonal step): one forward pass of ``images``
    in which every Conv2d and Linear except ``skip`` is rescaled so that its output has unit variance.

    A deep net without normalization layers (vgg16, alexnet) otherwise starts with a vanishing signal and spends
    its first steps at chance. Returns how many layers were rescaled.
    """
    rescaled = []

    def rescale(layer: torch.nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        std = float(output.std())
        if std <= 0 or layer is skip or any(layer is done for done in rescaled):  # a layer run twice: once
            return output
        layer.weight.div_(std)
        if layer.bias is not None:
            layer.bias.div_(std)
        rescaled.append(layer)
        return output / std  # later layers see the rescaled signal, as they will from now on

    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    handles = [layer.register_forward_hook(rescale) for layer in layers]
    was_training = model.training
    try:
        model.eval()
        model(images)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return len(rescaled)


@contextmanager
def dropout_disabled(model: torch.nn.Module) -> Iterator[None]:
    """Dropout off (p=0) inside the block, restored after: a short from-scratch run learns faster without it."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
    saved = [m.p for m in layers]
    for m in layers:
        m.p = 0.0
    try:
        yield
    finally:
        for m, p in zip(layers, saved):
            m.p = p


def pretrain(
    model: torch.nn.Module,
    data: StudyData,
    *,
    device: torch.device,
    steps: int,
    batch_size: int,
    optimizer: str,
    lr: float,
    weight_decay: float = 0.0,
    seed: int = 0,
    head: torch.nn.Module | None = None,
) -> float:
    """Train from scratch for ``steps`` batches (the ``self`` weights); returns the mean loss.

    Recipe: dropout off; a model without normalization layers first gets ``scale_to_unit_variance`` (on 64 train
    images, the classification ``head`` left as built); BatchNorm statistics are recomputed at the end.
    """
    trainer = Trainer(
        model,
        data,
        device=device,
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        weight_decay=weight_decay,
        steps=steps,
        seed=seed + 7919,
    )  # an order unlike fine-tuning's
    if not any(isinstance(m, NORMALIZATION_LAYERS) for m in model.modules()):
        images, _ = next(data.batches("train", range(min(64, len(data.train))), 64))
        scale_to_unit_variance(model, images.to(device), skip=head)
    with dropout_disabled(model):
        loss = trainer.train_one_round()
    recalibrate_batchnorm(model, data, device=device)
    return loss
