"""Every file in clusters/ is checked: launcher configs against Ray's own schema and for a project
install (never a copied .venv), the KubeRay manifest and its Dockerfile for internal consistency
(every image, volume, claim and secret it references is defined)."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from sharedsg.config import ResourcesConfig

ray = pytest.importorskip("ray")
jsonschema = pytest.importorskip("jsonschema")

CLUSTERS = Path(__file__).resolve().parent.parent / "clusters"
# what `sharedsg run` gives a Ray it starts (resources.inline_object_kb): every cluster file's nodes too
INLINE = f"RAY_max_direct_call_object_size={ResourcesConfig().inline_object_kb * 1024}"
LAUNCHERS = ["onprem.yaml", "aws.yaml"]


def ray_schema():
    return json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


def kuberay_docs():
    return [d for d in yaml.safe_load_all((CLUSTERS / "kuberay.yaml").read_text()) if d]


def test_every_cluster_file_is_covered():
    assert sorted(p.name for p in CLUSTERS.glob("*.yaml")) == sorted(LAUNCHERS + ["kuberay.yaml"])
    assert sorted(p.name for p in CLUSTERS.iterdir()) == sorted(
        LAUNCHERS + ["kuberay.yaml", "Dockerfile", "Dockerfile.dockerignore", "setup_node.sh"])


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_config_matches_ray_schema(name):
    cfg = yaml.safe_load((CLUSTERS / name).read_text())
    jsonschema.validate(cfg, ray_schema())
    starts = " ".join(cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"])
    assert starts.count("RAY_AUTH_MODE=token") >= 2  # token authentication on every node
    for cmd in cfg["head_start_ray_commands"][1:] + cfg["worker_start_ray_commands"][1:]:
        assert f"{INLINE} ray start" in cmd  # pushes and SG weights sent inline on every node


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_installs_the_project_not_the_local_venv(name):
    cfg = yaml.safe_load((CLUSTERS / name).read_text())
    text = (CLUSTERS / name).read_text()
    assert ".venv/bin" not in text  # nothing runs from a copied virtual environment
    assert ".venv" in cfg["rsync_exclude"] and "**/.venv" in cfg["rsync_exclude"]
    assert cfg["file_mounts"]["~/sharedsg"] == "."
    assert cfg["setup_commands"] == ["bash ~/sharedsg/clusters/setup_node.sh ~/sharedsg"]
    for cmd in cfg["head_start_ray_commands"][1:] + cfg["worker_start_ray_commands"][1:]:
        assert cmd.startswith("export PATH=$HOME/sharedsg-venv/bin:$PATH;")  # `sharedsg` resolves for jobs


def test_setup_script_picks_the_torch_build_per_node():
    script = (CLUSTERS / "setup_node.sh").read_text()
    assert subprocess.run(["bash", "-n", str(CLUSTERS / "setup_node.sh")]).returncode == 0
    assert "nvidia-smi" in script and "TORCH_CUDA_INDEX" in script and "whl/cpu" in script
    assert 'VENV=${SHAREDSG_VENV:-$HOME/sharedsg-venv}' in script  # the PATH the start commands use


def test_kuberay_manifest():
    docs = kuberay_docs()
    (doc,) = [d for d in docs if d["kind"] == "RayCluster"]
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
        name, value = INLINE.split("=")
        assert env[name]["value"] == value
    gpus = [g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu")
            for g in spec["workerGroupSpecs"]]
    assert all(gpus)


def test_kuberay_references_are_defined():
    """Images come from clusters/Dockerfile (the tag its build line makes, the Ray version of the
    manifest); every mounted volume is a volume of its pod; every claim and secret is defined (the
    claim in the manifest, the secret by the command in its header); every pod mounts storage."""
    text = (CLUSTERS / "kuberay.yaml").read_text()
    docs = kuberay_docs()
    (cluster,) = [d for d in docs if d["kind"] == "RayCluster"]
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    secrets = dict(re.findall(r"kubectl create secret generic (\S+) --from-literal=(\w+)=", text))
    dockerfile = (CLUSTERS / "Dockerfile").read_text()
    (tag,) = re.findall(r"docker build -f clusters/Dockerfile -t (\S+) \.", dockerfile)
    (base,) = re.findall(r"^FROM (\S+)", dockerfile, flags=re.M)
    assert base.startswith(f"rayproject/ray:{cluster['spec']['rayVersion']}-")
    assert f"docker build -f clusters/Dockerfile -t {tag} ." in text
    mounts = set()
    for g in [cluster["spec"]["headGroupSpec"]] + cluster["spec"]["workerGroupSpecs"]:
        pod = g["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            assert c["image"] == tag
            assert "pip install" not in " ".join(c.get("args", []))  # installed in the image, not at start
            for m in c.get("volumeMounts", []):
                assert m["name"] in volumes, m
                mounts.add(m["mountPath"])
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert secrets.get(ref["name"]) == ref["key"], ref
        for v in volumes.values():
            if "persistentVolumeClaim" in v:
                assert v["persistentVolumeClaim"]["claimName"] in claims
        assert any(m["mountPath"] == "/home/ray/runs" for c in pod["containers"] for m in c.get("volumeMounts", []))
    assert mounts == {"/home/ray/runs"} and "mkdir -p /home/ray/runs" in dockerfile
    assert "experiment.storage=/home/ray/runs" in text
    ignore = (CLUSTERS / "Dockerfile.dockerignore").read_text().split()
    assert ".venv" in ignore and "**/.venv" in ignore and "runs" in ignore
