"""Resource and QoS mapping: the exact numbers a normalized request becomes."""

from __future__ import annotations

import pytest

from harmonia.model import InputError, QoSClass
from harmonia.traces.mapping import DEFAULT_MAPPING, ResourceMapping, scale


def test_default_reference_is_the_largest_cloud_server() -> None:
    # cloud-server's largest shape: 96 vCPU at 4 GiB each, 4 TiB of storage
    assert DEFAULT_MAPPING.cpu_m == 96_000
    assert DEFAULT_MAPPING.memory_mib == 96 * 4 * 1024 == 393_216
    assert DEFAULT_MAPPING.disk_mib == 4096 * 1024
    assert DEFAULT_MAPPING.reference == "cloud-server 96000m/393216MiB"


@pytest.mark.parametrize(
    ("fraction", "unit", "expected"),
    [
        (0.0, 96_000, 0),  # 0 stays 0
        (0.03125, 96_000, 3000),  # 0.03125 x 96000 = 3000 exactly
        (0.01593, 393_216, 6264),  # 6263.93 rounds half up to 6264
        (0.5 / 96_000, 96_000, 1),  # 0.5 rounds up to 1
        (0.4 / 96_000, 96_000, 1),  # 0.4 would round to 0: at least 1 when > 0
        (1e-12, 393_216, 1),
        (1.0, 96_000, 96_000),
        (-0.1, 96_000, 0),
    ],
)
def test_scale_rounds_half_up_and_keeps_positive_requests(
    fraction: float, unit: int, expected: int
) -> None:
    assert scale(fraction, unit) == expected


def test_mapping_methods_use_the_reference() -> None:
    mapping = ResourceMapping(cpu_m=4000, memory_mib=8192, disk_mib=100_000)
    assert mapping.cpu(0.25) == 1000
    assert mapping.memory(0.125) == 1024
    assert mapping.disk(0.001) == 100
    # Lambda: 1 vCPU per 1769 MB -> 128 MiB is 72.36 m -> 72 m; 1769 MiB is one core
    assert mapping.function_cpu(128) == 72
    assert mapping.function_cpu(1769) == 1000
    assert mapping.function_cpu(0) == 0


@pytest.mark.parametrize(
    ("priority", "scheduling_class", "expected"),
    [
        (0, 0, QoSClass.BE),
        (8, 1, QoSClass.BE),  # highest non-production priority, batch class
        (9, 0, QoSClass.LC),  # production band 9-11
        (11, 0, QoSClass.LC),
        (0, 2, QoSClass.LC),  # latency-sensitive scheduling class
        (4, 3, QoSClass.LC),
    ],
)
def test_borg2011_qos_rule(priority: int, scheduling_class: int, expected: QoSClass) -> None:
    assert DEFAULT_MAPPING.qos_borg2011(priority, scheduling_class) is expected


@pytest.mark.parametrize(
    ("priority", "scheduling_class", "expected"),
    [
        (0, 0, QoSClass.BE),  # free tier
        (115, 1, QoSClass.BE),  # best-effort batch
        (119, 0, QoSClass.BE),  # mid tier
        (120, 0, QoSClass.LC),  # production tier starts
        (360, 0, QoSClass.LC),  # monitoring tier
        (25, 2, QoSClass.LC),  # latency-sensitive scheduling class
    ],
)
def test_borg2019_qos_rule(priority: int, scheduling_class: int, expected: QoSClass) -> None:
    assert DEFAULT_MAPPING.qos_borg2019(priority, scheduling_class) is expected


def test_rule_thresholds_are_configurable() -> None:
    strict = ResourceMapping(
        cpu_m=1000, memory_mib=1024, disk_mib=1024, lc_min_priority_2011=11,
        lc_min_scheduling_class=4,
    )  # fmt: skip
    assert strict.qos_borg2011(10, 3) is QoSClass.BE
    assert strict.qos_borg2011(11, 0) is QoSClass.LC


def test_for_node_class_reads_the_generator_classes() -> None:
    edge = ResourceMapping.for_node_class("edge-server")
    assert (edge.cpu_m, edge.memory_mib, edge.disk_mib) == (16000, 32 * 1024, 1024 * 1024)
    with pytest.raises(InputError, match="unknown 'nope'; known: rpi4"):
        ResourceMapping.for_node_class("nope")


def test_invalid_reference_names_every_bad_field() -> None:
    with pytest.raises(InputError) as caught:
        ResourceMapping(cpu_m=0, memory_mib=-1, disk_mib=1)
    assert [e.path for e in caught.value.errors] == ["cpu_m", "memory_mib"]
