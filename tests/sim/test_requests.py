"""Requests from trace events: the unvalidated fast path builds what validation would."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from harmonia.model import AntiAffinityConstraint, PlacementRequest, QoSClass
from harmonia.sim.requests import RequestBook
from harmonia.sim.scenario import RequestConfig
from harmonia.traces import EventKind, TaskEvent


def submit(**fields: Any) -> TaskEvent:
    base: dict[str, Any] = {"time_s": 0.0, "kind": EventKind.SUBMIT, "task": "j.0", "job": "j"}
    return TaskEvent(**{**base, **fields})


def no_keys() -> list[Any]:
    return []


@pytest.mark.parametrize(
    "event",
    [
        submit(cpu_m=1234, memory_mib=100, priority=9),
        submit(cpu_m=5, memory_mib=3, qos_class=QoSClass.LC),
        submit(cpu_m=2000, memory_mib=4096, disk_mib=300, spread_job=True),
    ],
)
def test_interned_requests_equal_validated_ones(event: TaskEvent) -> None:
    book = RequestBook(RequestConfig(disk=True))
    key = book.key_of(event, no_keys)
    request, vector = book[key]
    cpu, mem, disk, service, qos, priority = key
    # What the book built before it skipped validation:
    name = f"{service or 'task'}:{cpu}m:{mem}Mi" + (f":{disk}Mi-disk" if disk else "")
    validated = PlacementRequest(
        id=f"{name}:{qos}:p{priority}",
        service=service,
        qos_class=event.qos_class,
        priority=priority,
        cpu_m=cpu,
        memory_mib=mem,
        storage_mib=disk,
        constraints=(AntiAffinityConstraint(scope="node", max_per_domain=1),) if service else (),
    )
    assert request == validated
    assert request.model_fields_set == validated.model_fields_set
    assert request.model_dump() == validated.model_dump()
    assert (request.cpu_m, request.memory_mib, request.storage_mib) == (cpu, mem, disk)
    assert vector.tolist() == [cpu, mem, 0, disk, 0, 0]
    assert bool(request.constraints) == event.spread_job
    assert book.key_of(event, no_keys) == key  # and the memo answers the same


def test_amounts_the_model_refuses_are_still_validated() -> None:
    book = RequestBook(RequestConfig())
    with pytest.raises(ValidationError):
        book.key_of(submit(cpu_m=2**41, memory_mib=16), no_keys)


def test_whole_float_amounts_are_converted_by_validation() -> None:
    book = RequestBook(RequestConfig(quantize=False))
    request, _ = book[book.key_of(submit(cpu_m=1500.0, memory_mib=64), no_keys)]
    assert type(request.cpu_m) is int and request.cpu_m == 1500
