"""CUDA's GPU numbering mapped to NVML devices: CUDA_VISIBLE_DEVICES (indices, UUIDs), CUDA_DEVICE_ORDER, errors."""

from __future__ import annotations

import json
import sys
import warnings

import pytest

from energy_bench.meters import EnergyBenchWarning, GpuIndexError, MeterUnavailable, MigUnsupported, nvml_index
from energy_bench.meters.gpus import cuda_device, cuda_gpus, parse_visible_devices, pci_sort_key, select_gpus
from tests.fakes.fake_pynvml import FakeGpu, FakeNvml, fake_uuid

UUIDS = [
    "GPU-3f2a1b4c-0000-1111-2222-333344445555",
    "GPU-3f2a9d00-aaaa-bbbb-cccc-ddddeeeeffff",
    "GPU-77aa0000-1234-5678-9abc-def012345678",
]


@pytest.fixture
def nvml(monkeypatch):
    """An initialized fake NVML with three GPUs of one model on buses 0x1A, 0x2A, 0x3A (NVML index 0, 1, 2)."""
    fake = FakeNvml([FakeGpu(uuid=u) for u in UUIDS])
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    fake.module.nvmlInit()
    return fake


def env(visible: str | None = None, order: str | None = None) -> dict[str, str]:
    found = {}
    if visible is not None:
        found["CUDA_VISIBLE_DEVICES"] = visible
    if order is not None:
        found["CUDA_DEVICE_ORDER"] = order
    return found


def nvml_indices(fake: FakeNvml, environ: dict[str, str]) -> list[int]:
    return [g.nvml_index for g in cuda_gpus(fake.module, environ).gpus]


@pytest.mark.parametrize(
    "value, entries",
    [
        ("0,2", [0, 2]),
        (" 1 , 0 ", [1, 0]),
        ("1gpu2,2ampere", [1, 2]),  # CUDA reads each entry with strtoul
        ("0,-1,1", [0]),  # a negative number ends the list
        ("0,x,1", [0]),  # so does an entry without digits
        ("+1", [1]),
        ("", []),
        ("-1", []),
        ("GPU-3f2a1b4c,GPU-77", ["GPU-3f2a1b4c", "GPU-77"]),
        ("GPU-77,1", ["GPU-77"]),  # a UUID list ends at the first entry that is not one
    ],
)
def test_parse_visible_devices(value, entries):
    assert parse_visible_devices(value) == entries


def test_parse_rejects_duplicates_and_mig():
    with pytest.raises(GpuIndexError, match="lists 1 twice"):
        parse_visible_devices("1,0,1")
    with pytest.raises(MigUnsupported, match="MIG instances: NVML has no energy counter per MIG instance"):
        parse_visible_devices("MIG-GPU-3f2a1b4c/1/0")


def test_unset_is_every_gpu_in_pci_bus_order(nvml):
    nvml.gpus.reverse()  # an NVML that enumerates against bus order: CUDA's PCI order still decides
    view = cuda_gpus(nvml.module, env(order="PCI_BUS_ID"))
    assert [g.pci_bus_id for g in view.gpus] == ["00000000:1A:00.0", "00000000:2A:00.0", "00000000:3A:00.0"]
    assert [g.nvml_index for g in view.gpus] == [2, 1, 0]
    assert [g.domain for g in view.gpus] == ["gpu0", "gpu1", "gpu2"]
    assert view.describe() == {"CUDA_VISIBLE_DEVICES": None, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


@pytest.mark.parametrize(
    "visible, expected",
    [
        ("2,0", [2, 0]),
        ("1", [1]),
        (UUIDS[2], [2]),  # a full UUID
        ("GPU-77aa,GPU-3f2a1b", [2, 0]),  # unique prefixes, in the order listed
        ("GPU-3f2a9,1x", [1]),
    ],
)
def test_visible_devices_pick_and_order(nvml, visible, expected):
    assert nvml_indices(nvml, env(visible)) == expected


def test_the_mapping_agrees_with_nvml_lookups_by_uuid_and_bus_id(nvml):
    device = cuda_device(nvml.module, 0, env("GPU-77aa,GPU-3f2a1b"))
    assert device.nvml_index == 2 and device.uuid == UUIDS[2] and device.name == "NVIDIA Fake A100"
    assert nvml.module.nvmlDeviceGetHandleByUUID(device.uuid) is device.handle
    assert nvml.module.nvmlDeviceGetHandleByPciBusId(device.pci_bus_id) is device.handle
    assert device.describe() == {
        "domain": "gpu0",
        "cuda_index": 0,
        "nvml_index": 2,
        "uuid": UUIDS[2],
        "pci_bus_id": "00000000:3A:00.0",
        "name": "NVIDIA Fake A100",
    }


@pytest.mark.parametrize(
    "visible, message",
    [
        ("0,3", r"CUDA_VISIBLE_DEVICES='0,3': GPU 3 does not exist \(NVML sees 3 GPU\(s\), 0..2; CUDA would ignore"),
        ("GPU-0123", r"GPU-0123 matches no GPU \(UUIDs: GPU-3f2a1b4c-.*, GPU-3f2a9d00-.*, GPU-77aa0000-"),
        ("GPU-3f2a", r"GPU-3f2a matches several GPUs \(UUIDs: GPU-3f2a1b4c-[^,]*, GPU-3f2a9d00-[^,;]*;"),
        ("GPU-77aa,GPU-77aa0000", r"lists one GPU twice \(CUDA then shows no GPU\)"),
    ],
)
def test_entries_that_match_nothing_are_errors(nvml, visible, message):
    with pytest.raises(GpuIndexError, match=message):
        cuda_gpus(nvml.module, env(visible))


@pytest.mark.parametrize("visible", ["", "-1", " "])
def test_hidden_gpus_are_unavailable_not_an_error(nvml, visible):
    with pytest.raises(MeterUnavailable, match="hides every GPU") as info:
        cuda_gpus(nvml.module, env(visible))
    assert not isinstance(info.value, GpuIndexError)


def test_energy_gpus_are_positions_in_cuda_visible_devices(nvml):
    view, chosen = select_gpus(nvml.module, [1, 1], env("2,0"))
    assert [(g.cuda_index, g.nvml_index, g.domain) for g in chosen] == [(1, 0, "gpu1")]
    assert len(view.gpus) == 2
    with pytest.raises(
        GpuIndexError, match=r"GPU index 2 out of range: CUDA sees 2 GPU\(s\) \(CUDA_VISIBLE_DEVICES=2,0"
    ):
        select_gpus(nvml.module, [0, 2], env("2,0"))


def test_fastest_first_on_mixed_models_warns_and_notes_the_assumption(monkeypatch):
    fake = FakeNvml([FakeGpu(name="NVIDIA A100"), FakeGpu(name="Tesla T4")])
    fake.module.nvmlInit()
    with pytest.warns(EnergyBenchWarning, match="FASTEST_FIRST on GPUs of different models.*PCI bus order"):
        view = cuda_gpus(fake.module, env("1"))
    assert [g.name for g in view.gpus] == ["Tesla T4"]
    assert "CUDA_DEVICE_ORDER=PCI_BUS_ID" in view.describe()["cuda_order_note"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", EnergyBenchWarning)
        assert cuda_gpus(fake.module, env("1", order="PCI_BUS_ID")).order_note is None
        assert cuda_gpus(fake.module, env(fake_uuid(1))).order_note is None  # UUIDs need no order


def test_fastest_first_on_one_model_is_pci_bus_order(nvml):
    with warnings.catch_warnings():
        warnings.simplefilter("error", EnergyBenchWarning)
        view = cuda_gpus(nvml.module, env("2"))
    assert view.device_order == "FASTEST_FIRST" and view.order_note is None
    assert [g.nvml_index for g in view.gpus] == [2]


def test_no_gpu_at_all(monkeypatch):
    fake = FakeNvml([])
    fake.module.nvmlInit()
    with pytest.raises(MeterUnavailable, match="NVML sees no GPU"):
        cuda_gpus(fake.module, {})


def test_nvml_index_opens_and_closes_nvml_itself(nvml):
    nvml.module.nvmlShutdown()
    assert nvml_index(0, env("GPU-77aa,GPU-3f2a1b")) == 2
    assert nvml_index(1, env("GPU-77aa,GPU-3f2a1b")) == 0
    assert nvml.init_count == 0
    with pytest.raises(GpuIndexError, match="GPU index 2 out of range"):
        nvml_index(2, env("GPU-77aa,GPU-3f2a1b"))
    assert nvml.init_count == 0


def test_nvml_index_reads_this_process_environment(nvml, monkeypatch):
    nvml.module.nvmlShutdown()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert nvml_index(0) == 1


def test_nvml_index_without_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(library_found=False).module)
    with pytest.raises(MeterUnavailable, match="NVML cannot start"):
        nvml_index(0)


def test_pci_sort_key_reads_both_bus_id_widths():
    assert pci_sort_key("00000000:3B:00.0") == pci_sort_key("0000:3b:00.0") == (0, 0x3B, 0, 0)
    assert pci_sort_key("0001:01:00.1") > pci_sort_key("0000:ff:1f.7")


# ---------------------------------------------------------------------------- through pytest

FAKE_NVML_CONFTEST = """
    import sys

    from tests.fakes.fake_pynvml import FakeGpu, FakeNvml

    sys.modules["pynvml"] = FakeNvml([FakeGpu(uuid=u) for u in {uuids!r}]).module
"""


def test_energy_gpus_and_cuda_visible_devices_in_the_record(pytester: pytest.Pytester, monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    pytester.makeconftest(FAKE_NVML_CONFTEST.format(uuids=UUIDS))
    pytester.makepyfile("def test_gpu(energy):\n    energy(sum, range(10), rounds=2, warmup_rounds=0, iterations=1)\n")
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--energy-meter=nvml", "--energy-gpus=1", "--benchmark-json=out.json", "-W", "ignore"
    )
    result.assert_outcomes(passed=1)
    data = json.loads((pytester.path / "out.json").read_text())
    assert list(data["benchmarks"][0]["extra_info"]["energy"]["domains"]) == ["gpu1"]
    info = data["machine_info"]["energy"]
    assert info["CUDA_VISIBLE_DEVICES"] == "2,0"
    (gpu,) = info["gpus"]
    assert (gpu["domain"], gpu["cuda_index"], gpu["nvml_index"], gpu["uuid"], gpu["pci_bus_id"]) == (
        "gpu1",
        1,
        0,
        UUIDS[0],
        "00000000:1A:00.0",
    )


@pytest.mark.parametrize(
    "visible, args, message",
    [
        ("GPU-0bad", ("--energy-meter=nvml",), "ERROR: --energy-meter=nvml: CUDA_VISIBLE_DEVICES='GPU-0bad': *"),
        ("1", ("--energy-gpus=1",), "ERROR: --energy-meter=auto: GPU index 1 out of range: CUDA sees 1 GPU(s)*"),
        ("MIG-GPU-3f2a1b4c/1/0", ("--energy-meter=nvml",), "ERROR: *names MIG instances*"),
    ],
)
def test_gpus_that_do_not_exist_are_usage_errors(pytester: pytest.Pytester, monkeypatch, visible, args, message):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    pytester.makeconftest(FAKE_NVML_CONFTEST.format(uuids=UUIDS))
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
