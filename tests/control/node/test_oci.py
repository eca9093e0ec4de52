"""The ``oci`` runtime: bundles, safe extraction of image archives, and (with runc and
busybox-static installed: ``apt-get install runc busybox-static``) real containers."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from harmonia.control.node.runtimes import StartError
from harmonia.control.node.runtimes.oci import OciRuntime, extract_rootfs, runtime_config
from harmonia.control.protocol import InstanceState, RestartPolicy, Runtime
from tests.control.node.fakes import FakeCluster, eventually, running_engine, spec

BUSYBOX = Path("/bin/busybox")
needs_runc = pytest.mark.skipif(
    shutil.which("runc") is None or os.geteuid() != 0,
    reason="needs runc (apt-get install runc) and root",
)
needs_busybox = pytest.mark.skipif(
    not BUSYBOX.is_file(), reason="needs a static busybox (apt-get install busybox-static)"
)


def busybox_rootfs(directory: Path) -> Path:
    """A root filesystem of one static busybox and the applets the tests use."""
    rootfs = directory / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in ("sh", "echo", "sleep", "cat", "hostname"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    for mount_point in ("proc", "dev", "sys", "tmp"):
        (rootfs / mount_point).mkdir()
    return rootfs


def archive_with(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def test_the_runtime_config_follows_the_oci_spec() -> None:
    wanted = spec(
        "box.0",
        "sh",
        "-c",
        "echo $GREETING",
        runtime="oci",
        image="/images/box",
        env={"GREETING": "hi"},
        request={"id": "box.0", "cpu_m": 500, "memory_mib": 64},
    )
    config = runtime_config(wanted, "/images/box", readonly=True, hostname="box.0")
    assert config["ociVersion"].startswith("1.0")
    process = config["process"]
    assert process["args"] == ["sh", "-c", "echo $GREETING"]
    assert process["terminal"] is False and process["cwd"] == "/"
    assert "GREETING=hi" in process["env"]
    assert config["root"] == {"path": "/images/box", "readonly": True}
    linux = config["linux"]
    assert [n["type"] for n in linux["namespaces"]] == ["pid", "ipc", "uts", "mount"]
    assert linux["resources"]["cpu"] == {"quota": 50_000, "period": 100_000}
    assert linux["resources"]["memory"] == {"limit": 64 << 20}


def test_an_archive_is_extracted_with_its_links(tmp_path: Path) -> None:
    archive = archive_with(
        tmp_path / "image.tar.gz",
        (member("bin", tarfile.DIRTYPE), b""),
        (member("bin/busybox"), b"binary"),
        (member("bin/sh", tarfile.SYMTYPE, "busybox"), b""),
        (member("usr/bin/env", tarfile.SYMTYPE, "/bin/busybox"), b""),
        (member("bin/ash", tarfile.LNKTYPE, "bin/busybox"), b""),
    )
    rootfs = tmp_path / "rootfs"
    extract_rootfs(archive, rootfs)
    assert (rootfs / "bin" / "busybox").read_bytes() == b"binary"
    assert os.readlink(rootfs / "bin" / "sh") == "busybox"
    # An absolute link is fine: the container resolves it inside its own root.
    assert os.readlink(rootfs / "usr" / "bin" / "env") == "/bin/busybox"
    assert (rootfs / "bin" / "ash").read_bytes() == b"binary"


@pytest.mark.parametrize(
    "members",
    [
        [(member("/etc/evil"), b"x")],
        [(member("../evil"), b"x")],
        [(member("a/../../evil"), b"x")],
        [(member("hard", tarfile.LNKTYPE, "/etc/passwd"), b"")],
        [(member("hard", tarfile.LNKTYPE, "../outside"), b"")],
        # A link to outside, then a file written through it.
        [(member("escape", tarfile.SYMTYPE, "/tmp"), b""), (member("escape/evil"), b"x")],
    ],
    ids=["absolute", "dotdot", "nested-dotdot", "hardlink-abs", "hardlink-up", "through-link"],
)
def test_archive_members_that_leave_the_root_are_refused(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]]
) -> None:
    archive = archive_with(tmp_path / "image.tar.gz", *members)
    outside = tmp_path / "outside"
    with pytest.raises(StartError, match="leaves the root"):
        extract_rootfs(archive, tmp_path / "bundle" / "rootfs")
    assert not outside.exists() and not (tmp_path / "evil").exists()
    assert not Path("/tmp/evil").exists()


@pytest.mark.anyio
async def test_without_runc_an_oci_instance_fails_saying_so(
    tmp_path: Path, cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    async with running_engine(tmp_path / "node", cluster) as engine:
        engine.submit(spec("box.0", "sh", runtime="oci", image=str(tmp_path)))
        await eventually(lambda: not engine.instances["box.0"].supervised)
        instance = engine.instances["box.0"]
        assert instance.state is InstanceState.FAILED
        assert instance.detail == "runc is not installed"
        assert instance.restarts == 0


@pytest.mark.anyio
async def test_an_image_that_does_not_exist_fails(tmp_path: Path, cluster: FakeCluster) -> None:
    # A runc that is never reached: the image is checked first.
    runtimes = {Runtime.OCI: OciRuntime(tmp_path / "runc", runc="/bin/false")}
    async with running_engine(tmp_path / "node", cluster, runtimes=runtimes) as engine:
        engine.submit(spec("box.0", "sh", runtime="oci", image=str(tmp_path / "nope.tar")))
        await eventually(lambda: not engine.instances["box.0"].supervised)
        instance = engine.instances["box.0"]
        assert instance.state is InstanceState.FAILED
        assert "does not exist on this node" in instance.detail


@needs_runc
@needs_busybox
@pytest.mark.anyio
@pytest.mark.parametrize("image_kind", ["directory", "archive"])
async def test_a_busybox_container_runs_logs_and_stops(
    tmp_path: Path, cluster: FakeCluster, image_kind: str
) -> None:
    rootfs = busybox_rootfs(tmp_path)
    image = rootfs
    if image_kind == "archive":
        image = tmp_path / "busybox.tar.gz"
        with tarfile.open(image, "w:gz") as tar:
            tar.add(rootfs, arcname=".")
    async with running_engine(tmp_path / "node", cluster, grace_s=0.5) as engine:
        engine.submit(
            spec(
                "box.0",
                "sh",
                "-c",
                "echo hello; echo pid $$; hostname; sleep 30",
                runtime="oci",
                image=str(image),
                request={"id": "box.0", "cpu_m": 200, "memory_mib": 64},
            )
        )
        instance = engine.instances["box.0"]
        await eventually(lambda: instance.state is not InstanceState.NODE_SCHEDULED, timeout=10)
        assert instance.state is InstanceState.RUNNING, instance.detail
        await eventually(lambda: engine.logs("box.0", "stdout", 10) == "hello\npid 1\nbox.0\n")
        started = time.monotonic()
        await engine.stop("box.0")
        assert time.monotonic() - started < 5
        status = engine.status("box.0")
        assert status is not None and status.state is InstanceState.STOPPED
        states = tmp_path / "node" / "runc"
        assert not any(states.iterdir()), "runc delete left the container's state behind"


@needs_runc
@needs_busybox
@pytest.mark.anyio
async def test_a_crashing_container_is_restarted(tmp_path: Path, cluster: FakeCluster) -> None:
    rootfs = busybox_rootfs(tmp_path)
    async with running_engine(tmp_path / "node", cluster, restart_backoff_s=0.01) as engine:
        engine.submit(
            spec(
                "box.0",
                "sh",
                "-c",
                "echo run; exit 4",
                runtime="oci",
                image=str(rootfs),
                restart=RestartPolicy.ON_FAILURE,
                max_restarts=1,
            )
        )
        await eventually(lambda: not engine.instances["box.0"].supervised, timeout=10)
        instance = engine.instances["box.0"]
        assert instance.state is InstanceState.FAILED and instance.restarts == 1
        assert instance.detail.startswith("exited with status 4")
        assert engine.logs("box.0", "stdout", 10) == "run\nrun\n"
