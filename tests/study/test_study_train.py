"""Training loop: deterministic order, one round = the profile's steps, evaluation, dtype choice."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from energy_bench.study import data, train, zoo

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return data.load_data("digits", 16)


def _trainer(digits, seed=0, steps=2):
    torch.manual_seed(0)
    model = zoo.build_model("resnet18", digits.num_classes, 16)
    return train.Trainer(
        model, digits, device=CPU, batch_size=4, optimizer="sgd", lr=0.01, weight_decay=0.0, steps=steps, seed=seed
    )


def test_rounds_are_deterministic_and_sized(digits):
    a, b, c = _trainer(digits), _trainer(digits), _trainer(digits, seed=1)
    assert a.order(0) == b.order(0) and a.order(0) != a.order(1) and a.order(0) != c.order(0)
    assert len(a.order(0)) == 8
    assert a.train_one_round() == b.train_one_round()
    assert a.rounds_done == 1
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key


def test_whole_epoch_round_covers_the_train_split(digits):
    t = _trainer(digits, steps=None)
    assert sorted(t.order(0)) == list(range(len(digits.train)))


def test_evaluate_counts_correct_answers(digits):
    class Oracle(torch.nn.Module):  # answers the label hidden in the image: always right
        def forward(self, x):
            return torch.nn.functional.one_hot(self.labels[: len(x)], 10).float()

    oracle = Oracle()
    oracle.labels = digits.test.tensors[1][:10]
    assert train.evaluate(oracle, digits, device=CPU, limit=10, batch_size=10) == 1.0
    oracle.labels = (digits.test.tensors[1][:10] + 1) % 10
    assert train.evaluate(oracle, digits, device=CPU, limit=10, batch_size=10) == 0.0


def test_training_dtype_on_cpu(monkeypatch):
    assert train.training_dtype(CPU, torch.float32)[0] == torch.float32
    monkeypatch.setattr(train, "cpu_flags", lambda: {"avx2"})
    dtype, note = train.training_dtype(CPU, torch.bfloat16)
    assert dtype == torch.float32 and "no native bfloat16" in note
    monkeypatch.setattr(train, "cpu_flags", lambda: {"avx512_bf16"})
    assert train.training_dtype(CPU, torch.bfloat16) == (torch.bfloat16, "autocast bfloat16, fp32 master weights")


@pytest.mark.parametrize(
    "flags, native",
    [
        ({"avx", "avx2", "fma"}, ()),  # this VM's kind: float32 only
        ({"avx2", "avx512f", "avx512_bf16"}, (torch.bfloat16,)),  # Cooper Lake, Zen 4
        ({"avx512f", "amx_bf16", "amx_tile", "avx512_fp16", "amx_fp16"}, (torch.bfloat16, torch.float16)),
    ],
)
def test_native_formats_follow_the_cpu_flags_and_agree_with_training_dtype(monkeypatch, flags, native):
    monkeypatch.setattr(train, "cpu_flags", lambda: frozenset(flags))
    assert train.native_formats(CPU) == native
    for dtype in (torch.bfloat16, torch.float16):
        trained_in, why = train.training_dtype(CPU, dtype)
        assert (trained_in == dtype) == (dtype in native), why


def test_stego_in_the_study_chooses_among_the_devices_formats(monkeypatch, digits):
    """The study passes its device's native formats to stego: an AVX2 CPU gets float32, a bf16 CPU may get bf16."""
    from energy_bench.compress import apply

    torch.manual_seed(0)
    model = zoo.build_model("resnet18", digits.num_classes, 16)
    for flags in ({"avx2"}, {"avx512_bf16"}):
        monkeypatch.setattr(train, "cpu_flags", lambda flags=flags: frozenset(flags))
        result = apply(model, "stego:bits=18", formats=train.native_formats(CPU))
        assert result.dtype == (torch.bfloat16 if "avx512_bf16" in flags else torch.float32)
        assert train.training_dtype(CPU, result.dtype)[0] == result.dtype  # trained in what was chosen


def test_bfloat16_autocast_round_runs(digits):
    t = _trainer(digits, steps=1)
    t.dtype = torch.bfloat16
    before = t.model.fc.weight.detach().clone()
    loss = t.train_one_round()
    assert loss == loss and t.model.fc.weight.dtype == torch.float32  # fp32 master weights, updated
    assert not torch.equal(before, t.model.fc.weight)


def test_batchnorm_recalibration_matches_batch_statistics(digits):
    torch.manual_seed(0)
    model = zoo.build_model("resnet18", 10, 16)
    assert train.recalibrate_batchnorm(model, digits, device=CPU, samples=64, batch_size=64) == 20
    images = digits.train.tensors[0][:64]
    expected = model.conv1(images).mean(dim=(0, 2, 3))
    assert torch.allclose(model.bn1.running_mean, expected, atol=1e-4)


def _plain_net():
    """A small net without normalization layers, initialized too small to pass a signal (like vgg16's start)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(8 * 12 * 12, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 10),
    )
    for layer in net:
        if hasattr(layer, "weight"):
            torch.nn.init.normal_(layer.weight, std=0.01)
    return net


def test_scale_to_unit_variance_gives_every_layer_unit_output_variance(digits):
    net = _plain_net()
    images = digits.train.tensors[0][:32]
    head = net[-1]
    head_before = head.weight.detach().clone()
    assert train.scale_to_unit_variance(net, images, skip=head) == 3
    assert net.training  # mode restored
    outputs = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: outputs.append(o.std().item()))
        for m in net
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    net.eval()
    net(images)
    for h in hooks:
        h.remove()
    assert outputs[:3] == pytest.approx([1.0, 1.0, 1.0], rel=1e-3)
    assert torch.equal(head.weight, head_before)  # the head is left as built


def test_scale_to_unit_variance_rescales_a_shared_layer_once():
    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(8, 8)

        def forward(self, x):
            return self.layer(torch.relu(self.layer(x)))

    net = Twice()
    x = torch.randn(64, 8)
    assert train.scale_to_unit_variance(net, x) == 1
    assert net.layer(x).std().item() == pytest.approx(1.0, rel=1e-3)


def test_dropout_disabled_restores_the_rates():
    net = _plain_net()
    with train.dropout_disabled(net):
        assert net[5].p == 0.0
        assert torch.equal(net[5](torch.ones(100)), torch.ones(100))
    assert net[5].p == 0.5


def test_pretrain_scales_a_plain_net_and_keeps_dropout():
    tiny = data.load_data("digits", 16)
    net = _plain_net()
    first = net[0].weight.detach().clone()
    train.pretrain(net, tiny, device=CPU, steps=1, batch_size=8, optimizer="sgd", lr=0.0, head=net[-1])
    assert not torch.allclose(net[0].weight, first)  # rescaled (lr 0: no training step moved it)
    assert net[5].p == 0.5
    bn_net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.Linear(4 * 14 * 14, 10)
    )
    before = bn_net[0].weight.detach().clone()
    train.pretrain(bn_net, tiny, device=CPU, steps=1, batch_size=8, optimizer="sgd", lr=0.0)
    assert torch.equal(bn_net[0].weight, before)  # normalized nets are not rescaled


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_optimizers_use_fused_kernels_on_cpu(name):
    optimizer = train.make_optimizer(torch.nn.Linear(3, 2), name, lr=0.1, weight_decay=0.0)
    assert optimizer.defaults["fused"] is True
    double = torch.nn.Linear(3, 2).to(torch.float64)  # not float32: left to PyTorch's default implementation
    assert not train.make_optimizer(double, name, lr=0.1, weight_decay=0.0).defaults["fused"]
