"""Synthetic edge-cloud infrastructure: clusters at real cities and heterogeneous nodes.

The simulator, the benchmarks and ``harmonia nodes generate`` call
:func:`generate_nodes` / :func:`generate_nodes_from` for a node list and
:func:`generate_clusters` for the matching clusters; :meth:`Topology.generate
<harmonia.model.topology.Topology.generate>` then derives RTTs from the result. The same
seed gives the identical list.

Layout. With one cluster, ``cluster-0`` is a single mixed cluster at Frankfurt: about one
node in five is a cloud server, the rest edge devices. With two or more, cluster ``k`` is a
cloud data centre when ``k % 5 == 0`` (``cloud-0``, ``edge-1`` … ``edge-4``, ``cloud-5`` …),
placed at the data-centre cities of :data:`CITIES` in order; edge clusters take the other
cities in order. A city used again is shifted 15 km per reuse. Cloud nodes sit within
0.2 km of their data centre; edge nodes are scattered uniformly within 20 km of their
cluster's centre. Nodes are split evenly over clusters and named ``c<k>-<role>-<nnnn>``.

Hardware classes (:data:`NODE_CLASSES`), from the vendors' published figures:

- ``rpi4``: Raspberry Pi 4 Model B product brief — quad-core Cortex-A72 (4000m),
  4 or 8 GB LPDDR4, Gigabit Ethernet, boots from microSD (32/64 GiB here), no GPU
  Kubernetes can schedule.
- ``jetson-nano``: NVIDIA Jetson Nano Developer Kit — quad-core Cortex-A57, 128-core
  Maxwell GPU, 4 GB shared memory, Gigabit Ethernet, microSD (64 GiB here).
- ``jetson-xavier-nx``: NVIDIA Jetson Xavier NX module data sheet — 6-core Carmel ARMv8.2,
  384-core Volta GPU, 8 GB, Gigabit Ethernet; 64/128 GiB storage here.
- ``edge-server``: small x86 edge boxes such as the Intel NUC 11/12 Pro (4 cores /
  8 threads up to 12 cores / 16 threads, 16–32 GB, 2.5 GbE, NVMe SSD).
- ``cloud-server``: general-purpose cloud hosts sized like AWS EC2 m6i.8xlarge …
  m6i.24xlarge: 32–96 vCPU at 4 GiB per vCPU (128–384 GiB), 25 Gbit/s network.
- ``cloud-gpu-server``: GPU hosts sized like GCP a2-highgpu-4g (48 vCPU, 340 GiB,
  4 × A100) and AWS p4d.24xlarge (96 vCPU, 1152 GiB, 8 × A100), 100 Gbit/s here.

Allocatable = capacity minus the system reservations GKE documents for its nodes
(CPU: 6% of the first core, 1% of the second, 0.5% of the next two, 0.25% above four;
memory: 25% of the first 4 GiB, 20% of the next 4, 10% of the next 8, 6% of the next 112,
2% above 128 GiB, plus the kubelet's 100 MiB eviction threshold) and the kubelet's default
10% ``nodefs.available`` eviction threshold for storage. Cloud GPU servers carry the taint
``nvidia.com/gpu=present:NoSchedule`` that GKE puts on GPU node pools; all other nodes are
untainted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harmonia.model.errors import FieldError, InputError
from harmonia.model.node import Cluster, GeoPoint, Node, NodeRole, Taint, TaintEffect
from harmonia.model.resources import Resources


@dataclass(frozen=True)
class City:
    """A city's centre in WGS84 degrees."""

    name: str
    lat: float
    long: float
    data_centre: bool  # a major cloud region; cloud clusters go to these cities


CITIES: tuple[City, ...] = (
    # Cloud regions first (in the order cloud clusters use them) ...
    City("frankfurt", 50.1109, 8.6821, True),
    City("amsterdam", 52.3676, 4.9041, True),
    City("london", 51.5074, -0.1278, True),
    City("paris", 48.8566, 2.3522, True),
    City("dublin", 53.3498, -6.2603, True),
    City("stockholm", 59.3293, 18.0686, True),
    City("ashburn", 39.0438, -77.4874, True),
    City("singapore", 1.3521, 103.8198, True),
    # ... then edge cities, Europe first.
    City("munich", 48.1351, 11.5820, False),
    City("berlin", 52.5200, 13.4050, False),
    City("hamburg", 53.5511, 9.9937, False),
    City("vienna", 48.2082, 16.3738, False),
    City("zurich", 47.3769, 8.5417, False),
    City("milan", 45.4642, 9.1900, False),
    City("madrid", 40.4168, -3.7038, False),
    City("barcelona", 41.3874, 2.1686, False),
    City("lisbon", 38.7223, -9.1393, False),
    City("rome", 41.9028, 12.4964, False),
    City("warsaw", 52.2297, 21.0122, False),
    City("prague", 50.0755, 14.4378, False),
    City("brussels", 50.8503, 4.3517, False),
    City("copenhagen", 55.6761, 12.5683, False),
    City("oslo", 59.9139, 10.7522, False),
    City("helsinki", 60.1699, 24.9384, False),
    City("lyon", 45.7640, 4.8357, False),
    City("budapest", 47.4979, 19.0402, False),
    City("athens", 37.9838, 23.7275, False),
    City("bucharest", 44.4268, 26.1025, False),
    City("manchester", 53.4808, -2.2426, False),
    City("new-york", 40.7128, -74.0060, False),
    City("toronto", 43.6532, -79.3832, False),
    City("tokyo", 35.6762, 139.6503, False),
    City("sao-paulo", -23.5505, -46.6333, False),
    City("sydney", -33.8688, 151.2093, False),
)


@dataclass(frozen=True)
class NodeClass:
    """A hardware class; each ``shapes`` entry is (cpu_m, memory_mib, gpu) as sold together."""

    name: str
    role: NodeRole
    arch: str
    shapes: tuple[tuple[int, int, int], ...]
    storage_mib: tuple[int, ...]
    nic_kbps: int
    gpu_product: str = ""


_GIB = 1024
NODE_CLASSES: tuple[NodeClass, ...] = (
    NodeClass(
        name="rpi4",
        role=NodeRole.EDGE,
        arch="arm64",
        shapes=((4000, 4096, 0), (4000, 8192, 0)),
        storage_mib=(32 * _GIB, 64 * _GIB),
        nic_kbps=1_000_000,
    ),
    NodeClass(
        name="jetson-nano",
        role=NodeRole.EDGE,
        arch="arm64",
        shapes=((4000, 4096, 1),),
        storage_mib=(64 * _GIB,),
        nic_kbps=1_000_000,
        gpu_product="NVIDIA-Jetson-Nano",
    ),
    NodeClass(
        name="jetson-xavier-nx",
        role=NodeRole.EDGE,
        arch="arm64",
        shapes=((6000, 8192, 1),),
        storage_mib=(64 * _GIB, 128 * _GIB),
        nic_kbps=1_000_000,
        gpu_product="NVIDIA-Jetson-Xavier-NX",
    ),
    NodeClass(
        name="edge-server",
        role=NodeRole.EDGE,
        arch="amd64",
        shapes=tuple((cpu, mem * _GIB, 0) for cpu in (8000, 16000) for mem in (16, 32)),
        storage_mib=(512 * _GIB, 1024 * _GIB),
        nic_kbps=2_500_000,
    ),
    NodeClass(
        name="cloud-server",
        role=NodeRole.CLOUD,
        arch="amd64",
        shapes=tuple((vcpu * 1000, vcpu * 4 * _GIB, 0) for vcpu in (32, 48, 64, 96)),
        storage_mib=(1024 * _GIB, 2048 * _GIB, 4096 * _GIB),
        nic_kbps=25_000_000,
    ),
    NodeClass(
        name="cloud-gpu-server",
        role=NodeRole.CLOUD,
        arch="amd64",
        shapes=((48000, 340 * _GIB, 4), (96000, 1152 * _GIB, 8)),
        storage_mib=(2048 * _GIB, 4096 * _GIB),
        nic_kbps=100_000_000,
        gpu_product="NVIDIA-A100",
    ),
)

# Share of each class (in NODE_CLASSES order) per kind of cluster.
_MIX: dict[str, tuple[float, ...]] = {
    "edge": (0.40, 0.15, 0.10, 0.35, 0.0, 0.0),
    "cloud": (0.0, 0.0, 0.0, 0.0, 0.85, 0.15),
    "mixed": (0.32, 0.12, 0.08, 0.28, 0.17, 0.03),  # 80% edge mix + 20% cloud mix
}
_KIND_WORDS = {"edge": "edge site", "cloud": "cloud data centre", "mixed": "mixed edge-cloud site"}
EDGE_RADIUS_KM = 20.0
CLOUD_RADIUS_KM = 0.2
REUSE_SHIFT_KM = 15.0
GPU_TAINT = Taint(key="nvidia.com/gpu", value="present", effect=TaintEffect.NO_SCHEDULE)
_KM_PER_DEGREE = 111.32
# (tier size, share reserved): GKE's node allocatable tiers, quoted in the module doc.
_CPU_TIERS = ((1000.0, 0.06), (1000.0, 0.01), (2000.0, 0.005), (math.inf, 0.0025))
_MEMORY_TIERS = (
    (4.0 * _GIB, 0.25),
    (4.0 * _GIB, 0.20),
    (8.0 * _GIB, 0.10),
    (112.0 * _GIB, 0.06),
    (math.inf, 0.02),
)
_EVICTION_MIB = 100


@dataclass(frozen=True)
class _Site:
    index: int
    name: str
    kind: str  # "edge", "cloud" or "mixed"
    city: str
    lat: float
    long: float


def generate_clusters(clusters: int) -> list[Cluster]:
    """The clusters :func:`generate_nodes` places nodes in, for the same ``clusters``.

    The layout does not depend on the seed, so the two always agree.
    """
    _check_counts(clusters, clusters)
    return [
        Cluster(
            name=site.name,
            location=GeoPoint(lat=site.lat, long=site.long),
            description=f"{_KIND_WORDS[site.kind]} at {site.city}",
        )
        for site in _layout(clusters)
    ]


def generate_nodes(count: int, clusters: int = 1, seed: int = 0) -> list[Node]:
    """``count`` heterogeneous nodes over ``clusters`` clusters; same seed, same list."""
    return generate_nodes_from(np.random.default_rng(seed), count, clusters)


def generate_nodes_from(rng: np.random.Generator, count: int, clusters: int = 1) -> list[Node]:
    """As :func:`generate_nodes`, drawing from a caller's generator (e.g. a scenario's)."""
    _check_counts(count, clusters)
    sites = _layout(clusters)
    sizes = [count // clusters + (1 if k < count % clusters else 0) for k in range(clusters)]
    site_of = np.repeat(np.arange(clusters), sizes)
    # NOTE: all random draws happen here, vectorized; the loop below only builds objects.
    # Columns: class, shape, storage size, distance from the centre, bearing.
    u = rng.random((count, 5))
    class_of = np.empty(count, dtype=np.int64)
    for site in sites:
        rows = site_of == site.index
        cumulative = np.cumsum(_MIX[site.kind])
        picked = np.searchsorted(cumulative, u[rows, 0] * cumulative[-1], side="right")
        class_of[rows] = np.minimum(picked, len(NODE_CLASSES) - 1)
    class_radius = [
        EDGE_RADIUS_KM if c.role is NodeRole.EDGE else CLOUD_RADIUS_KM for c in NODE_CLASSES
    ]
    # sqrt: uniform over the disc's area rather than bunched at its centre
    radius = np.array(class_radius)[class_of] * np.sqrt(u[:, 3])
    bearing = 2 * np.pi * u[:, 4]
    centre_lat = np.array([s.lat for s in sites])[site_of]
    centre_long = np.array([s.long for s in sites])[site_of]
    lat = np.round(centre_lat + radius * np.cos(bearing) / _KM_PER_DEGREE, 6)
    long = centre_long + radius * np.sin(bearing) / (
        _KM_PER_DEGREE * np.cos(np.radians(centre_lat))
    )
    long = np.round((long + 180.0) % 360.0 - 180.0, 6)  # wrap across the antimeridian

    resources: dict[tuple[int, int, int], tuple[Resources, Resources]] = {}
    nodes: list[Node] = []
    position_in_site = [0] * clusters
    for k, c, u_shape, u_storage, la, lo in zip(
        site_of.tolist(),
        class_of.tolist(),
        u[:, 1].tolist(),
        u[:, 2].tolist(),
        lat.tolist(),
        long.tolist(),
        strict=True,
    ):
        node_class = NODE_CLASSES[c]
        shape = int(u_shape * len(node_class.shapes))
        storage = int(u_storage * len(node_class.storage_mib))
        key = (c, shape, storage)
        if key not in resources:
            resources[key] = _capacity_and_allocatable(node_class, shape, storage)
        capacity, allocatable = resources[key]
        site = sites[k]
        role = node_class.role.value
        name = f"c{k}-{role}-{position_in_site[k]:04d}"
        position_in_site[k] += 1
        has_gpu = capacity.gpu > 0
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/arch": node_class.arch,
            "kubernetes.io/os": "linux",
            "topology.kubernetes.io/region": site.city,
            "topology.kubernetes.io/zone": site.name,
            "harmonia.io/node-class": node_class.name,
            "harmonia.io/role": role,
            "harmonia.io/gpu": "true" if has_gpu else "false",
        }
        if has_gpu:
            labels["nvidia.com/gpu.product"] = node_class.gpu_product
        nodes.append(
            Node(
                name=name,
                cluster=site.name,
                role=node_class.role,
                node_class=node_class.name,
                labels=labels,
                taints=(GPU_TAINT,) if has_gpu and node_class.role is NodeRole.CLOUD else (),
                capacity=capacity,
                allocatable=allocatable,
                location=GeoPoint(lat=la, long=lo),
            )
        )
    return nodes


def system_reserved(cpu_m: int, memory_mib: int) -> tuple[int, int]:
    """CPU (m) and memory (MiB) kept back for the OS and kubelet, per GKE's published tiers.

    Worked example, a Raspberry Pi 4 with 4 cores and 4096 MiB: CPU 60 + 10 + 5 + 5 = 80m;
    memory 25% × 4096 = 1024 MiB + 100 MiB eviction threshold = 1124 MiB.
    """
    cpu = _tiered(cpu_m, _CPU_TIERS)
    memory = _tiered(memory_mib, _MEMORY_TIERS)
    return math.ceil(cpu), math.ceil(memory) + _EVICTION_MIB


def _tiered(amount: int, tiers: tuple[tuple[float, float], ...]) -> float:
    """Sum of ``share × the part of amount`` falling in each successive tier of ``size``."""
    reserved, left = 0.0, float(amount)
    for size, share in tiers:
        part = min(left, size)
        reserved += part * share
        left -= part
        if left <= 0:
            break
    return reserved


def _capacity_and_allocatable(
    node_class: NodeClass, shape: int, storage: int
) -> tuple[Resources, Resources]:
    cpu_m, memory_mib, gpu = node_class.shapes[shape]
    storage_mib = node_class.storage_mib[storage]
    capacity = Resources(
        cpu_m=cpu_m,
        memory_mib=memory_mib,
        gpu=gpu,
        storage_mib=storage_mib,
        bandwidth_in_kbps=node_class.nic_kbps,
        bandwidth_out_kbps=node_class.nic_kbps,
    )
    cpu_reserved, memory_reserved = system_reserved(cpu_m, memory_mib)
    allocatable = capacity.model_copy(
        update={
            "cpu_m": cpu_m - cpu_reserved,
            "memory_mib": memory_mib - memory_reserved,
            "storage_mib": storage_mib * 9 // 10,
        }
    )
    return capacity, allocatable


def _layout(clusters: int) -> list[_Site]:
    """Cluster names, kinds and centres; depends only on ``clusters`` (see module doc)."""
    if clusters == 1:
        city = CITIES[0]
        return [_Site(0, "cluster-0", "mixed", city.name, city.lat, city.long)]
    data_centres = [c for c in CITIES if c.data_centre]
    edge_cities = [c for c in CITIES if not c.data_centre]
    used = {"cloud": 0, "edge": 0}
    sites = []
    for k in range(clusters):
        kind = "cloud" if k % 5 == 0 else "edge"
        pool = data_centres if kind == "cloud" else edge_cities
        round_, slot = divmod(used[kind], len(pool))
        used[kind] += 1
        city = pool[slot]
        lat, long = _shift(city.lat, city.long, REUSE_SHIFT_KM * round_, 137.5 * round_)
        sites.append(_Site(k, f"{kind}-{k}", kind, city.name, lat, long))
    return sites


def _shift(lat: float, long: float, km: float, bearing_deg: float) -> tuple[float, float]:
    """A point ``km`` away on ``bearing_deg`` (flat-earth approximation, fine below 100 km)."""
    if km == 0:
        return lat, long
    bearing = math.radians(bearing_deg)
    new_lat = lat + km * math.cos(bearing) / _KM_PER_DEGREE
    new_long = long + km * math.sin(bearing) / (_KM_PER_DEGREE * math.cos(math.radians(lat)))
    return round(new_lat, 6), round((new_long + 180.0) % 360.0 - 180.0, 6)


def _check_counts(count: int, clusters: int) -> None:
    errors = []
    if clusters < 1:
        errors.append(FieldError("clusters", f"must be >= 1, got {clusters}"))
    elif count < clusters:
        errors.append(FieldError("count", f"must be >= clusters ({clusters}), got {count}"))
    if errors:
        raise InputError(errors)
