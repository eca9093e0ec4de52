"""The ``oci`` runtime: an OCI bundle run by ``runc`` in the foreground of the engine.

The bundle lives in ``<instance dir>/bundle``: ``config.json`` generated from the spec
(OCI runtime specification 1.0: ``process.args`` = ``cmd``, the environment, cwd ``/``,
pid/ipc/uts/mount namespaces, CPU quota and memory limit in ``linux.resources``, no
terminal) and a root filesystem from ``spec.image``:

- a directory: used in place as the root, read-only (several instances may share it);
- a ``.tar``, ``.tar.gz`` or ``.tgz`` archive: extracted into ``bundle/rootfs`` once,
  refusing members with absolute paths or ``..``, links that leave the root, and members
  that would be written through a symbolic link.

``runc run`` stays in the foreground, so the container's output lands in the instance's
log files exactly as with the ``process`` runtime, and its exit status is the container's.
Stopping is ``runc kill TERM``, then ``KILL`` after the grace period, then ``runc delete
--force``. The network namespace is the host's, so a service listens where its users
expect it, as with Oakestra's default (Bartolomeo et al., USENIX ATC'23) before its
overlay network is set up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

from harmonia.control.node.limits import (
    CPU_PERIOD_US,
    MIB,
    AppliedLimits,
    cpu_quota_us,
)
from harmonia.control.node.runtimes import (
    DEFAULT_PATH,
    STDERR_LOG,
    STDOUT_LOG,
    InstanceRuntime,
    RunHandle,
    StartError,
)
from harmonia.control.node.runtimes.process import kill_group
from harmonia.control.protocol import InstanceSpec

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
RUNC_TIMEOUT_S = 10.0
EXTRACTED_MARKER = ".harmonia-extracted"
# Mount points runc needs in every root filesystem.
MOUNT_POINTS = ("proc", "dev", "sys", "tmp")


def container_id(instance_id: str) -> str:
    """runc accepts letters, digits and ``_+-.``; instance ids are already that safe."""
    return re.sub(r"[^A-Za-z0-9_+.-]", "-", instance_id)


def is_archive(image: str) -> bool:
    return image.endswith(ARCHIVE_SUFFIXES)


def _inside(root: Path, path: Path) -> bool:
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root + os.sep)


def extract_rootfs(archive: Path, rootfs: Path) -> None:
    """Extract ``archive`` into ``rootfs`` safely; raises :class:`StartError`."""
    rootfs.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts:
                    raise StartError(f"image: archive member {member.name!r} leaves the root")
                if not name.parts:
                    continue  # "." itself: the root, already there
                if member.isdev() or member.isfifo():
                    continue  # runc provides /dev; device nodes from an archive are not trusted
                target = rootfs / name
                # Never write through a symbolic link extracted earlier.
                if not _inside(rootfs, target.parent):
                    raise StartError(f"image: archive member {member.name!r} leaves the root")
                if member.islnk():
                    link = PurePosixPath(member.linkname)
                    if (
                        link.is_absolute()
                        or ".." in link.parts
                        or not _inside(rootfs, rootfs / link)
                    ):
                        raise StartError(
                            f"image: hard link {member.name!r} -> {member.linkname!r} "
                            "leaves the root"
                        )
                # Symbolic links may point anywhere: they are resolved inside the
                # container's root when it runs, and the check above keeps extraction
                # itself from following them. A member replacing an earlier link must not
                # be written through it either.
                if target.is_symlink():
                    target.unlink()
                tar.extract(member, rootfs, filter="fully_trusted")
    except (tarfile.TarError, OSError) as exc:
        raise StartError(f"image: cannot extract {archive}: {exc}") from exc


def runtime_config(
    spec: InstanceSpec, root_path: str, *, readonly: bool, hostname: str
) -> dict[str, Any]:
    """An OCI runtime spec 1.0 ``config.json`` for ``spec``."""
    env = {"PATH": DEFAULT_PATH, "HOME": "/", "LANG": "C.UTF-8"}
    env.update(spec.env)
    resources: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    request = spec.request
    if request.cpu_m > 0:
        resources["cpu"] = {"quota": cpu_quota_us(request.cpu_m), "period": CPU_PERIOD_US}
    if request.memory_mib > 0:
        resources["memory"] = {"limit": request.memory_mib * MIB}
    capabilities = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": list(spec.cmd),
            "env": [f"{key}={value}" for key, value in env.items()],
            "cwd": "/",
            "capabilities": {
                "bounding": capabilities,
                "effective": capabilities,
                "permitted": capabilities,
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": root_path, "readonly": readonly},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
        ],
        "linux": {
            "resources": resources,
            "namespaces": [{"type": kind} for kind in ("pid", "ipc", "uts", "mount")],
            "maskedPaths": [
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/sched_debug",
                "/sys/firmware",
            ],
            "readonlyPaths": [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ],
        },
    }


async def runc_command(runc: str, state_root: Path, *args: str) -> tuple[int, str]:
    """Run ``runc --root state_root args...``; its status and standard error."""
    process = await asyncio.create_subprocess_exec(
        runc,
        "--root",
        str(state_root),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(process.communicate(), RUNC_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        return -1, f"runc {args[0]} timed out"
    return process.returncode or 0, err.decode(errors="replace").strip()


class OciHandle(RunHandle):
    def __init__(
        self, process: asyncio.subprocess.Process, runc: str, state_root: Path, cid: str
    ) -> None:
        self.process = process
        self.pid = process.pid
        self.runc = runc
        self.state_root = state_root
        self.cid = cid

    async def wait(self) -> int:
        code = await self.process.wait()
        await runc_command(self.runc, self.state_root, "delete", "--force", self.cid)
        return code

    async def terminate(self, grace_s: float) -> None:
        if self.process.returncode is None:
            await runc_command(self.runc, self.state_root, "kill", self.cid, "TERM")
            try:
                await asyncio.wait_for(self.process.wait(), grace_s)
            except TimeoutError:
                await runc_command(self.runc, self.state_root, "kill", self.cid, "KILL")
                try:
                    await asyncio.wait_for(self.process.wait(), grace_s)
                except TimeoutError:
                    kill_group(self.pid, signal.SIGKILL)
                    await self.process.wait()
        await runc_command(self.runc, self.state_root, "delete", "--force", self.cid)

    def record(self) -> dict[str, Any]:
        return {
            "runtime": "oci",
            "container_id": self.cid,
            "runc_root": str(self.state_root),
        }


class OciRuntime(InstanceRuntime):
    """``state_root``: runc's state directory, one per engine so engines never clash."""

    name = "oci"

    def __init__(self, state_root: Path, runc: str | None = None) -> None:
        self.state_root = state_root
        self.runc = runc

    def find_runc(self) -> str | None:
        return self.runc or shutil.which("runc", path=os.environ.get("PATH", DEFAULT_PATH))

    def check(self, spec: InstanceSpec) -> str | None:
        if not spec.image:
            return "image: required for the oci runtime (a root filesystem directory or archive)"
        return None

    def prepare_bundle(self, spec: InstanceSpec, bundle: Path) -> None:
        image = Path(spec.image)
        if image.is_dir():
            root_path, readonly = str(image.resolve()), True
        elif image.is_file() and is_archive(spec.image):
            rootfs = bundle / "rootfs"
            if not (bundle / EXTRACTED_MARKER).exists():
                if rootfs.exists():
                    shutil.rmtree(rootfs)
                extract_rootfs(image, rootfs)
                for mount_point in MOUNT_POINTS:
                    (rootfs / mount_point).mkdir(exist_ok=True)
                (bundle / EXTRACTED_MARKER).touch()
            root_path, readonly = str(rootfs), False
        elif image.exists():
            raise StartError(
                f"image: {spec.image!r} is neither a directory nor a .tar/.tar.gz archive"
            )
        else:
            raise StartError(f"image: {spec.image!r} does not exist on this node")
        config = runtime_config(
            spec, root_path, readonly=readonly, hostname=container_id(spec.instance_id)
        )
        (bundle / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")

    async def start(self, spec: InstanceSpec, directory: Path, limits: AppliedLimits) -> RunHandle:
        # ``limits`` are not entered: runc applies linux.resources to the container itself.
        runc = self.find_runc()
        if runc is None:
            raise StartError("runc is not installed")
        problem = self.check(spec)
        if problem:
            raise StartError(problem)
        bundle = directory / "bundle"
        bundle.mkdir(parents=True, exist_ok=True)
        self.state_root.mkdir(parents=True, exist_ok=True)
        self.prepare_bundle(spec, bundle)
        cid = container_id(spec.instance_id)
        # A container of the same id left by an earlier run would make ``run`` fail.
        await runc_command(runc, self.state_root, "delete", "--force", cid)
        with (
            open(directory / STDOUT_LOG, "ab") as stdout,
            open(directory / STDERR_LOG, "ab") as stderr,
        ):
            try:
                process = await asyncio.create_subprocess_exec(
                    runc,
                    "--root",
                    str(self.state_root),
                    "run",
                    "--bundle",
                    str(bundle),
                    cid,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                    cwd=directory,
                    start_new_session=True,
                )
            except OSError as exc:
                raise StartError(f"cannot start runc: {exc}") from exc
        return OciHandle(process, runc, self.state_root, cid)

    async def reap(self, record: dict[str, Any]) -> None:
        runc = self.find_runc()
        cid, root = record.get("container_id"), record.get("runc_root")
        if runc is None or not isinstance(cid, str) or not isinstance(root, str):
            return
        with contextlib.suppress(OSError):
            await runc_command(runc, Path(root), "kill", cid, "KILL")
            await runc_command(runc, Path(root), "delete", "--force", cid)


__all__ = [
    "OciHandle",
    "OciRuntime",
    "container_id",
    "extract_rootfs",
    "is_archive",
    "runtime_config",
]
