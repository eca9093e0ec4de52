"""Import RTTs from Goldpinger's ``/check_all`` JSON.

Goldpinger (github.com/bloomberg/goldpinger) runs one pod per Kubernetes node; every pod
periodically calls every other pod's ``/ping`` over HTTP and ``/check_all`` returns the
whole mesh::

    {"responses": {
        "goldpinger-a": {"HostIP": "10.0.0.1", "OK": true,
                         "response": {"podResults": {
                             "goldpinger-b": {"HostIP": "10.0.0.2", "OK": true,
                                              "response-time-ms": 3, "status-code": 200}}}},
        ...}}

Versions differ in small ways, all accepted: ``HostIP`` or ``hostIP``, ``OK`` or ``ok``,
``response-time-ms`` or ``response_time_ms`` (integer or fractional ms).

What the number means: ``response-time-ms`` is the duration of one HTTP call from pod A
to pod B: at least one network round trip, plus B's handling time and, when the
connection is not reused, the TCP handshake's extra round trip. It is therefore an upper
estimate of RTT(A, B), and the importer takes it *as* the RTT, averaging both directions
(A→B and B→A) and repeated results for the same node pair. Integer versions report
sub-millisecond calls as 0; these become :data:`ZERO_TIME_MS`, half the resolution.

Pods become nodes by their ``HostIP`` through a ``{ip: node name}`` map when one is
given (the usual case: Goldpinger pods are named after their DaemonSet, not the node),
else by pod name. Calls that failed (``OK: false``) carry no RTT; they are listed as
``failed`` pairs, which failure-aware policies can read as "unreachable right now".

When every pair of nodes has a measurement, :attr:`GoldpingerImport.matrix` is a full
:class:`~harmonia.sched.rtt.source.MatrixRtt`; otherwise :meth:`GoldpingerImport.source`
fits Vivaldi coordinates to the sparse samples.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from harmonia.model.errors import FieldError, InputError
from harmonia.sched.rtt.source import MatrixRtt, RttSource
from harmonia.sched.rtt.vivaldi import RttSamples, fit_vivaldi, samples_of

ZERO_TIME_MS = 0.5
"""RTT recorded for a reported time of 0 ms (below the integer-millisecond resolution)."""

_HOST_KEYS = ("HostIP", "hostIP")
_OK_KEYS = ("OK", "ok")
_TIME_KEYS = ("response-time-ms", "response_time_ms")
_MAX_ERRORS = 20


@dataclass(frozen=True)
class GoldpingerImport:
    """Nodes, RTT samples (averaged per unordered node pair) and failed pairs."""

    names: tuple[str, ...]
    samples: RttSamples
    failed: tuple[tuple[str, str], ...]

    @property
    def complete(self) -> bool:
        """Whether every pair of distinct nodes has an RTT."""
        n = len(self.names)
        return self.samples.size == n * (n - 1) // 2

    @property
    def matrix(self) -> MatrixRtt | None:
        """The full symmetric matrix when :attr:`complete`, else ``None``."""
        if not self.complete:
            return None
        n = len(self.names)
        rtt = np.zeros((n, n), dtype=np.float32)
        rtt[self.samples.i, self.samples.j] = self.samples.rtt_ms
        rtt[self.samples.j, self.samples.i] = self.samples.rtt_ms
        return MatrixRtt(self.names, rtt)

    def source(self, **vivaldi: Any) -> RttSource:
        """:attr:`matrix` when complete, else coordinates from :func:`fit_vivaldi` (keyword
        arguments go to it)."""
        matrix = self.matrix
        if matrix is not None:
            return matrix
        return fit_vivaldi(len(self.names), self.samples, names=self.names, **vivaldi)


def from_goldpinger(
    document: Mapping[str, Any] | str,
    host_to_node: Mapping[str, str] | None = None,
    *,
    source: str = "goldpinger",
) -> GoldpingerImport:
    """Parse a ``/check_all`` response (a dict or its JSON text); see the module docstring.

    Every problem is reported at once as an :class:`InputError` whose paths follow the
    JSON: ``responses["goldpinger-a"].response.podResults["goldpinger-b"]
    ["response-time-ms"]: must be a non-negative number, got "fast"``.
    """
    errors: list[FieldError] = []
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as exc:
            raise InputError([FieldError("", f"is not valid JSON: {exc}")], source) from None
    if not isinstance(document, Mapping):
        raise InputError([FieldError("", "must be a JSON object")], source)
    responses = document.get("responses")
    if not isinstance(responses, Mapping):
        raise InputError([FieldError("responses", "must be an object keyed by pod")], source)

    # (node a, node b) with a < b → list of times; failures per ordered pair of nodes.
    times: dict[tuple[str, str], list[float]] = {}
    failed: set[tuple[str, str]] = set()
    nodes: set[str] = set()
    for pod, entry in responses.items():
        path = f"responses[{json.dumps(pod)}]"
        if not isinstance(entry, Mapping):
            errors.append(FieldError(path, "must be an object"))
            continue
        here = _node_of(pod, entry, path, host_to_node, errors)
        if here is None:
            continue
        nodes.add(here)
        if _first(entry, _OK_KEYS) is False:
            continue  # this pod could not be asked; its results are absent, not failures
        response = entry.get("response")
        results = response.get("podResults") if isinstance(response, Mapping) else None
        if not isinstance(results, Mapping):
            errors.append(FieldError(f"{path}.response.podResults", "must be an object"))
            continue
        for other, result in results.items():
            rpath = f"{path}.response.podResults[{json.dumps(other)}]"
            if not isinstance(result, Mapping):
                errors.append(FieldError(rpath, "must be an object"))
                continue
            there = _node_of(other, result, rpath, host_to_node, errors)
            if there is None:
                continue
            nodes.add(there)
            if there == here:
                continue  # a pod's check of itself, or two pods on one node
            ok = _first(result, _OK_KEYS)
            if not isinstance(ok, bool):
                errors.append(FieldError(f"{rpath}.OK", f"must be true or false, got {ok!r}"))
                continue
            if not ok:
                failed.add((here, there))
                continue
            value = _first(result, _TIME_KEYS)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                key = next((k for k in _TIME_KEYS if k in result), _TIME_KEYS[0])
                problem = "is required" if value is None else f"got {json.dumps(value)}"
                errors.append(
                    FieldError(
                        f"{rpath}[{json.dumps(key)}]", f"must be a non-negative number, {problem}"
                    )
                )
                continue
            pair = (here, there) if here < there else (there, here)
            times.setdefault(pair, []).append(float(value) if value > 0 else ZERO_TIME_MS)
    if errors:
        shown = errors[:_MAX_ERRORS]
        if len(errors) > _MAX_ERRORS:
            shown.append(FieldError("", f"... and {len(errors) - _MAX_ERRORS} more"))
        raise InputError(shown, source)

    names = tuple(sorted(nodes))
    index = {name: k for k, name in enumerate(names)}
    pairs = sorted(times)
    i = np.array([index[a] for a, _ in pairs], dtype=np.intp)
    j = np.array([index[b] for _, b in pairs], dtype=np.intp)
    rtt = np.array([sum(times[p]) / len(times[p]) for p in pairs], dtype=np.float64)
    return GoldpingerImport(names, samples_of(i, j, rtt, len(names)), tuple(sorted(failed)))


def _first(entry: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in entry:
            return entry[key]
    return None


def _node_of(
    pod: str,
    entry: Mapping[str, Any],
    path: str,
    host_to_node: Mapping[str, str] | None,
    errors: list[FieldError],
) -> str | None:
    """The node a pod runs on; ``None`` (with an error appended) when it cannot be told."""
    if host_to_node is None:
        return pod
    ip = _first(entry, _HOST_KEYS)
    if not isinstance(ip, str) or not ip:
        errors.append(FieldError(f"{path}.HostIP", "is required to map the pod to a node"))
        return None
    node = host_to_node.get(ip)
    if node is None:
        errors.append(FieldError(f"{path}.HostIP", f"{ip!r} is not in the host-to-node map"))
    return node
