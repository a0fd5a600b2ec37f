"""Every file in clusters/ validates: launcher configs against Ray's own schema, the KubeRay manifest."""

import json
from pathlib import Path

import pytest
import yaml

ray = pytest.importorskip("ray")
jsonschema = pytest.importorskip("jsonschema")

CLUSTERS = Path(__file__).resolve().parent.parent / "clusters"
LAUNCHERS = ["onprem.yaml", "aws.yaml"]


def ray_schema():
    return json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


def test_every_cluster_file_is_covered():
    assert sorted(p.name for p in CLUSTERS.glob("*.yaml")) == sorted(LAUNCHERS + ["kuberay.yaml"])


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_config_matches_ray_schema(name):
    cfg = yaml.safe_load((CLUSTERS / name).read_text())
    jsonschema.validate(cfg, ray_schema())
    starts = " ".join(cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"])
    assert starts.count("RAY_AUTH_MODE=token") >= 2  # token authentication on every node


def test_kuberay_manifest():
    doc = yaml.safe_load((CLUSTERS / "kuberay.yaml").read_text())
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayCluster"
    assert doc["metadata"]["name"]
    spec = doc["spec"]
    groups = [spec["headGroupSpec"]] + spec["workerGroupSpecs"]
    assert "rayStartParams" in spec["headGroupSpec"]
    for g in spec["workerGroupSpecs"]:
        assert g["groupName"] and "rayStartParams" in g and isinstance(g.get("replicas", 0), int)
    for g in groups:
        containers = g["template"]["spec"]["containers"]
        assert containers and all(c["name"] and c["image"] for c in containers)
        env = {e["name"]: e for e in containers[0]["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token" and "RAY_AUTH_TOKEN" in env
    gpus = [g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu")
            for g in spec["workerGroupSpecs"]]
    assert all(gpus)
