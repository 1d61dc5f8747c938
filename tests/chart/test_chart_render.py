"""Chart unit tests: render with the real helm and assert on the manifests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from helmrender import CHART, MONITORING_API, REPO, copy_chart, of_kind, one, render

from trainforge_operator.config import OperatorConfig

CI = CHART / "ci"
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(pod_spec: dict[str, Any]) -> list[str]:
    """Why a pod spec breaks the restricted Pod Security Standard (empty list: it complies)."""
    problems: list[str] = []
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(host):
            problems.append(f"{host} is set")
    pod_sc = pod_spec.get("securityContext") or {}
    for vol in pod_spec.get("volumes") or []:
        kinds = set(vol) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {vol['name']} uses {kinds - RESTRICTED_VOLUME_TYPES}")
    containers = (pod_spec.get("initContainers") or []) + pod_spec["containers"]
    for c in containers:
        sc = c.get("securityContext") or {}
        name = c["name"]
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {caps['add']}")
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{name}: runAsNonRoot must be true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{name}: runs as UID 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{name}: hostPort {port['hostPort']}")
    return problems


def test_restricted_checker_catches_a_privileged_pod() -> None:
    """The checker itself must be able to fail, or the next test proves nothing."""
    bad = {
        "hostNetwork": True,
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        "containers": [{"name": "c", "securityContext": {"privileged": True}}],
    }
    problems = restricted_violations(bad)
    assert any("hostNetwork" in p for p in problems)
    assert any("hostPath" in p for p in problems)
    assert any("privileged" in p for p in problems)
    assert any("seccompProfile" in p for p in problems)


@pytest.fixture(scope="module")
def default_docs(helm: str) -> list[dict[str, Any]]:
    return render(helm)


def test_deployment_is_single_recreate_restricted(default_docs: list[dict[str, Any]]) -> None:
    dep = one(default_docs, "Deployment")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    pod = dep["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]


def test_deployment_probes_ports_env_and_volumes(default_docs: list[dict[str, Any]]) -> None:
    dep = one(default_docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TRAINFORGE_CONFIG"] == "/etc/trainforge/config.yaml"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    config_cm = volumes[mounts["/etc/trainforge"]]["configMap"]["name"]
    cm = next(d for d in of_kind(default_docs, "ConfigMap") if d["metadata"]["name"] == config_cm)
    assert "config.yaml" in cm["data"]
    assert pod["serviceAccountName"] == one(default_docs, "ServiceAccount")["metadata"]["name"]
    # Service links would inject TRAINFORGE_METRICS_PORT=tcp://... and break the settings parse.
    assert pod["enableServiceLinks"] is False


def test_config_matches_the_operator_settings_model(default_docs: list[dict[str, Any]]) -> None:
    """The rendered config.yaml must load into the operator's own settings model."""
    cm = next(d for d in of_kind(default_docs, "ConfigMap") if "config.yaml" in d["data"])
    data = yaml.safe_load(cm["data"]["config.yaml"])
    assert data["namespaces"] == []
    assert data["metricsPort"] == 8080
    assert data["peering"] is None
    # The model ignores unknown keys (extra="ignore"): a misspelt key would load silently.
    known = {field.alias or name for name, field in OperatorConfig.model_fields.items()}
    assert set(data) <= known, f"keys the operator ignores: {set(data) - known}"
    cfg = OperatorConfig.model_validate(data)
    assert cfg.metrics_port == 8080
    assert cfg.log_format == "json"
    assert cfg.node_pools["gpu-a100"].gpu_resource_name == "nvidia.com/gpu"
    assert cfg.node_pools["gpu-a100"].tolerations[0]["key"] == "nvidia.com/gpu"


def all_rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    roles = of_kind(docs, "ClusterRole") + of_kind(docs, "Role")
    return [rule for role in roles for rule in role["rules"]]


def grants(docs: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) → verbs, over every Role and ClusterRole."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in all_rules(docs):
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                out.setdefault((group, res), set()).update(rule["verbs"])
    return out


EXPECTED_NAMESPACED = {
    # create: a TrainingSweep's trials and a TrainingSchedule's runs are TrainingJobs the operator
    # creates.
    ("trainforge.io", "trainingjobs"): {
        "get",
        "list",
        "watch",
        "patch",
        "update",
        "delete",
        "create",
    },
    ("trainforge.io", "trainingjobs/status"): {"get", "patch", "update"},
    ("trainforge.io", "trainingsweeps"): {"get", "list", "watch"},
    ("trainforge.io", "trainingsweeps/status"): {"get", "patch", "update"},
    ("trainforge.io", "trainingschedules"): {"get", "list", "watch"},
    ("trainforge.io", "trainingschedules/status"): {"get", "patch", "update"},
    ("", "pods"): {"get", "list", "watch", "create", "delete", "patch"},
    ("", "services"): {"get", "list", "watch", "create", "delete", "patch"},
    ("", "configmaps"): {"get", "list", "watch", "create", "delete", "patch"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
}


def test_cluster_rbac_is_exactly_least_privilege(default_docs: list[dict[str, Any]]) -> None:
    assert of_kind(default_docs, "Role") == []
    expected = {
        **EXPECTED_NAMESPACED,
        ("", "namespaces"): {"list", "watch"},
        ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
    }
    assert grants(default_docs) == expected
    binding = one(default_docs, "ClusterRoleBinding")
    sa = one(default_docs, "ServiceAccount")["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["name"], "namespace": "trainforge-system"}
    ]


@pytest.mark.parametrize("scenario", ["default", *sorted(p.name for p in CI.glob("*-values.yaml"))])
def test_rbac_has_no_wildcards_or_secrets(helm: str, scenario: str) -> None:
    values = [] if scenario == "default" else [CI / scenario]
    docs = render(helm, values=values, api_versions=[MONITORING_API])
    for rule in all_rules(docs):
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"wildcard in {field}: {rule}"
        assert "secrets" not in rule["resources"]
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


def test_namespaced_mode_renders_roles_per_namespace(helm: str) -> None:
    docs = render(helm, values=[CI / "namespaced-values.yaml"])
    roles = of_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    bindings = of_kind(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for b in bindings:
        assert b["roleRef"]["kind"] == "Role"
        assert b["subjects"][0]["namespace"] == "trainforge-system"
    for role in roles:
        role_grants = grants([role])
        for key, verbs in EXPECTED_NAMESPACED.items():
            assert role_grants[key] == verbs
        assert role_grants[("kopf.dev", "kopfpeerings")] == {"get", "list", "watch", "patch"}
    # Cluster scope shrinks to reading CRDs: no cluster-wide pods, jobs or namespaces.
    (cluster_role,) = of_kind(docs, "ClusterRole")
    assert grants([cluster_role]) == {
        ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}
    }
    cm = next(d for d in of_kind(docs, "ConfigMap") if "config.yaml" in d["data"])
    config = yaml.safe_load(cm["data"]["config.yaml"])
    assert config["namespaces"] == ["team-a", "team-b"]
    assert config["peering"] == "trainforge"


MONITOR_KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")


def test_monitors_need_the_capability(helm: str, default_docs: list[dict[str, Any]]) -> None:
    for kind in MONITOR_KINDS:
        assert of_kind(default_docs, kind) == [], f"{kind} rendered without {MONITORING_API}"
    with_api = render(helm, api_versions=[MONITORING_API])
    for kind in MONITOR_KINDS:
        assert len(of_kind(with_api, kind)) == 1


def test_monitors_need_the_toggle(helm: str) -> None:
    docs = render(helm, values=[CI / "minimal-values.yaml"], api_versions=[MONITORING_API])
    for kind in MONITOR_KINDS:
        assert of_kind(docs, kind) == []


def test_monitor_selection_ports_and_labels(helm: str) -> None:
    docs = render(helm, values=[CI / "monitoring-values.yaml"], api_versions=[MONITORING_API])
    for kind in MONITOR_KINDS:
        assert one(docs, kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    pm = one(docs, "PodMonitor")["spec"]
    assert pm["selector"] == {
        "matchExpressions": [{"key": "trainforge.io/job-name", "operator": "Exists"}]
    }
    assert pm["namespaceSelector"] == {"matchNames": ["ml-team"]}
    (endpoint,) = pm["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["honorLabels"] is True
    sm = one(docs, "ServiceMonitor")["spec"]
    svc = one(docs, "Service")
    assert sm["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert [p["name"] for p in svc["spec"]["ports"]] == [sm["endpoints"][0]["port"]]
    assert svc["spec"]["ports"][0]["port"] == 8080
    assert {"targetLabel": "job", "replacement": "trainforge-operator"} in sm["endpoints"][0][
        "relabelings"
    ]


def test_prometheus_rule_is_the_rules_file(helm: str) -> None:
    docs = render(helm, api_versions=[MONITORING_API])
    rule = one(docs, "PrometheusRule")
    source = yaml.safe_load((CHART / "rules" / "trainforge-alerts.yaml").read_text())
    assert rule["spec"]["groups"] == source["groups"]
    alerts = {r["alert"] for g in source["groups"] for r in g["rules"]}
    assert alerts == {
        "TrainforgeJobFailed",
        "TrainforgeJobPendingTooLong",
        "TrainforgeJobNoProgress",
        "TrainforgeHealthFindingFired",
        "TrainforgeLowGPUUtilization",
        "TrainforgeOperatorDown",
        "TrainforgeRetrainingStale",
    }


def test_dashboards_are_labelled_configmaps(helm: str, default_docs: list[dict[str, Any]]) -> None:
    dashboards = [
        d for d in of_kind(default_docs, "ConfigMap") if "dashboard" in d["metadata"]["name"]
    ]
    assert len(dashboards) == 2
    titles = set()
    for cm in dashboards:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        (body,) = cm["data"].values()
        titles.add(json.loads(body)["title"])
    assert titles == {"trainforge / Training", "trainforge / Operator"}
    elsewhere = render(helm, values=[CI / "monitoring-values.yaml"])
    moved = [d for d in of_kind(elsewhere, "ConfigMap") if "dashboard" in d["metadata"]["name"]]
    assert {d["metadata"]["namespace"] for d in moved} == {"monitoring"}
    assert render(helm, sets=["dashboards.enabled=false"]) != default_docs


def crd_sources() -> tuple[list[Path], list[Path]]:
    """CRD files in Helm's native crds/ dir, and in files/crds/ (rendered by the template)."""
    native = sorted((CHART / "crds").glob("*.yaml"))
    return native, sorted((CHART / "files" / "crds").glob("*.yaml"))


def test_crd_ships_through_exactly_one_route() -> None:
    """Helm's crds/ dir and the templated files/crds/ must never both carry the CRD."""
    native, templated = crd_sources()
    assert bool(native) != bool(templated), (native, templated)
    copies = native or templated
    assert sorted(c.name for c in copies) == sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    for copy in copies:
        generated = REPO / "crds" / copy.name
        assert copy.read_text() == generated.read_text(), "chart CRD copy drifted: run make crds"


def test_crds_enabled_toggles_the_templated_crd(helm: str, tmp_path: Path) -> None:
    """With the CRD under files/crds/, crds.enabled decides and the CRD survives uninstall."""
    chart = copy_chart(tmp_path)
    shutil.rmtree(chart / "crds", ignore_errors=True)
    shutil.rmtree(chart / "files" / "crds", ignore_errors=True)
    (chart / "files" / "crds").mkdir(parents=True, exist_ok=True)
    for generated in (REPO / "crds").glob("*.yaml"):
        shutil.copy(generated, chart / "files" / "crds")
    crds = of_kind(render(helm, chart=chart), "CustomResourceDefinition")
    by_name = {c["metadata"]["name"]: c for c in crds}
    assert set(by_name) == {
        "trainingjobs.trainforge.io",
        "trainingschedules.trainforge.io",
        "trainingsweeps.trainforge.io",
    }
    assert by_name["trainingschedules.trainforge.io"]["spec"]["names"]["shortNames"] == ["tsc"]
    assert by_name["trainingsweeps.trainforge.io"]["spec"]["names"]["shortNames"] == ["tsw"]
    crd = by_name["trainingjobs.trainforge.io"]
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert crd["spec"]["names"]["shortNames"] == ["tj"]
    off = render(helm, chart=chart, sets=["crds.enabled=false"])
    assert of_kind(off, "CustomResourceDefinition") == []


def render_notes(helm: str, tmp_path: Path, values: list[Path], api_versions: list[str]) -> str:
    """NOTES.txt rendered by helm (helm template skips it): through tpl in a scratch chart."""
    chart = copy_chart(tmp_path)
    (chart / "files" / "notes.txt").write_text((chart / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        'data: {notes: {{ tpl (.Files.Get "files/notes.txt") . | toJson }}}\n'
    )
    docs = render(helm, chart=chart, values=values, api_versions=api_versions)
    notes = next(d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"] == "notes")
    return str(notes["data"]["notes"])


def test_notes_tell_what_was_installed(helm: str, tmp_path: Path) -> None:
    plain = render_notes(helm, tmp_path / "a", [], [])
    assert "rollout status deployment/trainforge" in plain
    assert "does not serve monitoring.coreos.com/v1" in plain
    namespaced = render_notes(
        helm, tmp_path / "b", [CI / "namespaced-values.yaml"], [MONITORING_API]
    )
    assert "watches these namespaces only: team-a, team-b" in namespaced
    assert "ServiceMonitor PodMonitor PrometheusRule" in namespaced


EXPECTED_KUEUE = {
    ("kueue.x-k8s.io", "workloads"): {"get", "create"},
    ("kueue.x-k8s.io", "workloads/status"): {"get", "update"},
    ("kueue.x-k8s.io", "localqueues"): {"get"},
}
EXPECTED_KUEUE_CLUSTER = {
    ("kueue.x-k8s.io", "resourceflavors"): {"get"},
    ("kueue.x-k8s.io", "workloadpriorityclasses"): {"get"},
}


def test_kueue_rbac_and_setting_only_when_enabled(
    helm: str, default_docs: list[dict[str, Any]]
) -> None:
    assert not any(group == "kueue.x-k8s.io" for group, _ in grants(default_docs))
    docs = render(helm, sets=["kueue.enabled=true"])
    expected = {
        **EXPECTED_NAMESPACED,
        **EXPECTED_KUEUE,
        **EXPECTED_KUEUE_CLUSTER,
        ("", "namespaces"): {"list", "watch"},
        ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
    }
    assert grants(docs) == expected
    cm = next(d for d in of_kind(docs, "ConfigMap") if "config.yaml" in d["data"])
    assert OperatorConfig.model_validate(yaml.safe_load(cm["data"]["config.yaml"])).kueue
    # Namespaced mode: Workloads per watched namespace, the cluster-scoped reads in the ClusterRole.
    docs = render(helm, values=[CI / "namespaced-values.yaml"], sets=["kueue.enabled=true"])
    for role in of_kind(docs, "Role"):
        role_grants = grants([role])
        assert {k: role_grants[k] for k in EXPECTED_KUEUE} == EXPECTED_KUEUE
    (cluster_role,) = of_kind(docs, "ClusterRole")
    assert {k: v for k, v in grants([cluster_role]).items() if k[0] == "kueue.x-k8s.io"} == (
        EXPECTED_KUEUE_CLUSTER
    )
