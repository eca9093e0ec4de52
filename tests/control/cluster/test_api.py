"""The cluster manager's HTTP API against a fake root and fake node engines: identity,
credentials, placement through the scheduling core, deletion and logs."""

from __future__ import annotations

import json

from harmonia.control.cluster.__main__ import main
from harmonia.control.protocol import InstanceState

from .conftest import Start
from .fakes import (
    CLUSTER_SECRET,
    NODE_TOKEN,
    ROOT_AUTH,
    FakeNetwork,
    beat,
    place,
    register,
    spec,
    wait_for,
)


def test_registers_once_and_reuses_its_identity_after_restart(
    start: Start, net: FakeNetwork
) -> None:
    with start() as tc:
        wait_for(lambda: net.root.reports, message="first report")
        assert tc.get("/health").json() == {
            "status": "ok",
            "nodes": 0,
            "healthy_nodes": 0,
            "instances": 0,
        }
    [registration] = net.root.registrations
    assert registration.name == "c1"
    assert registration.url == "http://c1.test"
    cluster_id, bearer, report = net.root.reports[0]
    assert (cluster_id, bearer, report.name) == ("cluster-1", f"Bearer {CLUSTER_SECRET}", "c1")

    reports_before = len(net.root.reports)
    with start():
        wait_for(lambda: len(net.root.reports) > reports_before, message="report after restart")
    # The join token is single-use: the restarted manager did not register again.
    assert len(net.root.registrations) == 1
    assert net.root.reports[-1][:2] == ("cluster-1", f"Bearer {CLUSTER_SECRET}")


def test_serves_nodes_while_the_root_is_unreachable(start: Start, net: FakeNetwork) -> None:
    net.root.reachable = False
    with start(registered=False) as tc:
        node = net.add_node("n1")
        register(tc, node)
        assert beat(tc, node) == {"stop": [], "start": []}
        # Calls from the root cannot be authenticated before the root issued a secret.
        assert place(tc, spec()).status_code == 503
        net.root.reachable = True
        wait_for(lambda: net.root.reports, timeout_s=3.0, message="registration after outage")
        assert net.root.reports[-1][2].nodes[0].node.name == "n1"


def test_node_join_token_and_re_registration(start: Start, net: FakeNetwork) -> None:
    node = net.add_node("n1")
    body = {"node": {"name": "n1", "capacity": {"cpu_m": 1000}}, "url": node.url}
    with start() as tc:
        wrong = tc.post("/api/nodes/register", json={**body, "join_token": "x" * 20})
        assert wrong.status_code == 401
        assert "join_token" in wrong.json()["detail"]
        short = tc.post("/api/nodes/register", json={**body, "join_token": "short"})
        assert short.status_code == 422
        assert tc.get("/health").json()["nodes"] == 0

        register(tc, node)
        first_secret = node.secret
        register(tc, node)  # a restarted engine
        assert node.secret != first_secret
        stale = tc.post(
            "/api/nodes/n1/heartbeat",
            content=node.heartbeat().model_dump_json(),
            headers={"Authorization": f"Bearer {first_secret}"},
        )
        assert stale.status_code == 401
        assert tc.get("/health").json()["nodes"] == 1


def test_heartbeat_credentials(start: Start, net: FakeNetwork) -> None:
    node = net.add_node("n1")
    with start() as tc:
        register(tc, node)
        body = node.heartbeat().model_dump_json()
        no_header = tc.post("/api/nodes/n1/heartbeat", content=body)
        assert no_header.status_code == 401
        wrong = tc.post(
            "/api/nodes/n1/heartbeat", content=body, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
        unknown = tc.post(
            "/api/nodes/ghost/heartbeat",
            content=body,
            headers={"Authorization": f"Bearer {node.secret}"},
        )
        assert unknown.status_code == 404
        assert "register" in unknown.json()["detail"]
        malformed = tc.post(
            "/api/nodes/n1/heartbeat",
            json={"usage": {"cpu_percent": -1}},
            headers={"Authorization": f"Bearer {node.secret}"},
        )
        assert malformed.status_code == 422
        assert beat(tc, node) == {"stop": [], "start": []}


def test_root_calls_need_the_cluster_secret(start: Start, net: FakeNetwork) -> None:
    with start() as tc:
        body = spec().model_dump_json()
        assert tc.post("/api/instances", content=body).status_code == 401
        wrong = tc.post("/api/instances", content=body, headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401
        assert tc.get("/api/nodes").status_code == 401
        assert tc.delete("/api/instances/svc1.0").status_code == 401
        assert tc.get("/api/instances/svc1.0/logs").status_code == 401
        assert tc.get("/api/nodes", headers=ROOT_AUTH).json() == []


def test_places_through_the_core_and_refuses_what_fits_nowhere(
    start: Start, net: FakeNetwork
) -> None:
    small = net.add_node("n1", cpu_m=1000)
    with start() as tc:
        register(tc, small)
        too_big = place(tc, spec("big.0", cpu_m=4000))
        assert too_big.status_code == 409
        refused = too_big.json()
        assert refused["placed"] is False and refused["instance_id"] == "big.0"
        assert any("cpu_m" in reason for reason in refused["reasons"]), refused
        assert small.posted == []
        assert tc.get("/health").json()["instances"] == 0

        placed = place(tc, spec("svc1.0", cpu_m=400))
        assert placed.status_code == 200, placed.text
        assert placed.json() == {
            "placed": True,
            "instance_id": "svc1.0",
            "node": "n1",
            "reasons": [],
        }
        assert [s.instance_id for s in small.posted] == ["svc1.0"]
        assert small.bearers[-1] == f"Bearer {small.secret}"
        # Idempotent: the same instance again is neither placed nor sent twice.
        assert place(tc, spec("svc1.0", cpu_m=400)).json()["node"] == "n1"
        assert small.posts_of("svc1.0") == 1

        [view] = tc.get("/api/nodes", headers=ROOT_AUTH).json()
        assert view["free"]["cpu_m"] == 600
        assert view["instances"] == 1
        # The node's answer (RUNNING) reached the root without waiting for a heartbeat.
        wait_for(
            lambda: any(
                s.instance_id == "svc1.0" and s.state is InstanceState.RUNNING
                for s in (net.root.last_report() or _empty()).instances
            ),
            message="RUNNING reported",
        )


def _empty() -> object:
    from harmonia.control.protocol import ClusterReport

    return ClusterReport(name="c1", nodes=[], instances=[])


def test_malformed_specs_are_refused_and_change_nothing(start: Start, net: FakeNetwork) -> None:
    node = net.add_node("n1")
    with start() as tc:
        register(tc, node)
        body = spec().model_dump(mode="json")
        missing = tc.post("/api/instances", json={**body, "cmd": []}, headers=ROOT_AUTH)
        assert missing.status_code == 422
        assert "cmd" in str(missing.json()["detail"])
        unknown = tc.post("/api/instances", json={**body, "colour": "red"}, headers=ROOT_AUTH)
        assert unknown.status_code == 422
        slash = tc.post(
            "/api/instances", json={**body, "instance_id": "../../etc"}, headers=ROOT_AUTH
        )
        assert slash.status_code == 422
        assert "instance_id" in slash.json()["detail"]
        assert node.posted == []
        assert tc.get("/health").json()["instances"] == 0


def test_an_unreachable_node_is_released_and_the_next_one_tried(
    start: Start, net: FakeNetwork
) -> None:
    # The bigger node scores best (least allocated), so it is tried first.
    big = net.add_node("big", cpu_m=8000, memory_mib=8192)
    small = net.add_node("small", cpu_m=2000, memory_mib=2048)
    with start() as tc:
        register(tc, big)
        register(tc, small)
        big.reachable = False
        reply = place(tc, spec("svc1.0", cpu_m=500))
        assert reply.status_code == 200, reply.text
        assert reply.json()["node"] == "small"
        assert big.posted == [] and small.posts_of("svc1.0") == 1
        views = {v["name"]: v for v in tc.get("/api/nodes", headers=ROOT_AUTH).json()}
        assert views["big"]["free"]["cpu_m"] == 8000  # the attempt's reservation was released
        assert views["small"]["free"]["cpu_m"] == 1500

        small.reachable = False
        nowhere = place(tc, spec("svc1.1", cpu_m=500))
        assert nowhere.status_code == 409
        assert any("unreachable" in reason for reason in nowhere.json()["reasons"])
        views = {v["name"]: v for v in tc.get("/api/nodes", headers=ROOT_AUTH).json()}
        assert views["big"]["free"]["cpu_m"] == 8000
        assert views["small"]["free"]["cpu_m"] == 1500
        assert tc.get("/health").json()["instances"] == 1


def test_delete_stops_on_the_node_and_is_idempotent(start: Start, net: FakeNetwork) -> None:
    node = net.add_node("n1", cpu_m=1000)
    with start() as tc:
        register(tc, node)
        assert place(tc, spec("svc1.0", cpu_m=800)).status_code == 200
        assert place(tc, spec("svc1.1", cpu_m=800)).status_code == 409
        assert tc.delete("/api/instances/svc1.0", headers=ROOT_AUTH).status_code == 204
        assert node.deleted == ["svc1.0"]
        assert tc.delete("/api/instances/svc1.0", headers=ROOT_AUTH).status_code == 204
        assert tc.delete("/api/instances/never-was", headers=ROOT_AUTH).status_code == 204
        assert node.deleted == ["svc1.0"]
        # The capacity is free again.
        assert place(tc, spec("svc1.1", cpu_m=800)).status_code == 200


def test_logs_are_proxied_from_the_node(start: Start, net: FakeNetwork) -> None:
    node = net.add_node("n1")
    with start() as tc:
        register(tc, node)
        place(tc, spec("svc1.0"))
        logs = tc.get(
            "/api/instances/svc1.0/logs", params={"stream": "stderr", "tail": 5}, headers=ROOT_AUTH
        )
        assert logs.status_code == 200
        assert logs.text == "svc1.0 stderr tail=5\n"
        bad_stream = tc.get(
            "/api/instances/svc1.0/logs", params={"stream": "stdin"}, headers=ROOT_AUTH
        )
        assert bad_stream.status_code == 422
        bad_tail = tc.get("/api/instances/svc1.0/logs", params={"tail": -1}, headers=ROOT_AUTH)
        assert bad_tail.status_code == 422
        assert tc.get("/api/instances/nope.0/logs", headers=ROOT_AUTH).status_code == 404
        node.reachable = False
        assert tc.get("/api/instances/svc1.0/logs", headers=ROOT_AUTH).status_code == 502


def test_process_entry_point_refuses_a_bad_config_in_one_line(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "cluster.json"
    config.write_text('{"name": "c1", "root_url": "http://x", "node_join_token": "short"}')
    assert main(["--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("harmonia cluster: ")
    assert "node_join_token" in err and "state_dir" in err
    assert main(["--config", str(tmp_path / "missing.json")]) == 2
    assert "no such configuration file" in capsys.readouterr().err
    good = {
        "state_dir": str(tmp_path / "state"),
        "name": "c1",
        "root_url": "http://x",
        "root_join_token": NODE_TOKEN,
        "node_join_token": NODE_TOKEN,
    }
    config.write_text(json.dumps({**good, "policy": "nonsense"}))
    assert main(["--config", str(config)]) == 2
    assert "unknown policy" in capsys.readouterr().err
