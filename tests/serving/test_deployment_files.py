"""serving/: the TF Serving config files parse with TF Serving's protos and agree with
the compose file and Kubernetes manifest."""

from __future__ import annotations

import os
import re

import pytest
import yaml
from google.protobuf import text_format

SERVING = os.path.join(os.path.dirname(__file__), "..", "..", "deploy")
CONFIG_MOUNT = "/models/config"


def _read(name: str) -> str:
    with open(os.path.join(SERVING, name)) as handle:
        return handle.read()


def _flags(args: list[str]) -> dict[str, str]:
    flags = {}
    for arg in args:
        key, _, value = arg.lstrip("-").partition("=")
        flags[key] = value or "true"
    return flags


def test_models_config_parses():
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse(_read("models.config"), model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert model.name == "lmiqa" and model.base_path == "/models/lmiqa" and model.model_platform == "tensorflow"
    assert model.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert model.model_version_policy.latest.num_versions == 1
    # the commented rollback pin is itself valid
    pin = re.search(r"#\s*(model_version_policy \{ specific \{ versions: \d+ \} \})", _read("models.config"))
    pinned = text_format.Parse(pin[1], model_server_config_pb2.ModelConfig())
    assert list(pinned.model_version_policy.specific.versions) == [3]


def test_batching_parameters_parse_and_are_consistent():
    from tfs_config_protos import BatchingParameters

    params = text_format.Parse(_read("batching_parameters.txt"), BatchingParameters())
    sizes = list(params.allowed_batch_sizes)
    assert sizes == sorted(sizes) and sizes[-1] == params.max_batch_size.value  # TF Serving's requirements
    assert params.max_batch_size.value >= 32  # one client request (batch_size=32) fits in a batch
    assert 0 < params.batch_timeout_micros.value <= 20_000
    assert params.num_batch_threads.value >= 1 and params.max_enqueued_batches.value >= 1
    assert not params.pad_variable_length_inputs  # padding pixels would change scores
    with pytest.raises(text_format.ParseError):
        text_format.Parse("max_batch_sise { value: 8 }", BatchingParameters())


def test_monitoring_config_parses():
    from tfs_config_protos import MonitoringConfig

    config = text_format.Parse(_read("monitoring.config"), MonitoringConfig())
    assert config.prometheus_config.enable and config.prometheus_config.path == "/monitoring/prometheus/metrics"


def _check_server_flags(flags: dict[str, str], mounts: dict[str, str]):
    assert flags["port"] == "8500" and flags["rest_api_port"] == "8501"
    assert flags["enable_batching"] == "true" and flags["enable_model_warmup"] == "true"
    for flag, name in (("model_config_file", "models.config"), ("batching_parameters_file", "batching_parameters.txt"),
                       ("monitoring_config_file", "monitoring.config")):
        assert flags[flag] == f"{CONFIG_MOUNT}/{name}"
        assert name in mounts.get(flags[flag], ""), (flag, mounts)
        assert os.path.isfile(os.path.join(SERVING, name))
    assert "max_receive_message_length=33554432" in flags["grpc_channel_arguments"]


def test_docker_compose_runs_pinned_tf_serving_with_the_configs():
    service = yaml.safe_load(_read("docker-compose.yml"))["services"]["lmiqa"]
    image, tag = service["image"].split(":")
    assert image == "tensorflow/serving"
    assert tuple(int(x) for x in tag.split(".")[:2]) >= (2, 21) and re.fullmatch(r"\d+\.\d+\.\d+", tag)
    ports = {p.rsplit(":", 1)[-1] for p in service["ports"]}
    assert ports == {"8500", "8501"} and all(p.startswith("127.0.0.1:") for p in service["ports"])
    mounts = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[target] = source
    assert mounts["/models/lmiqa"].endswith("exports/lmiqa")
    _check_server_flags(_flags(service["command"]), mounts)


def test_k8s_manifest():
    documents = list(yaml.safe_load_all(_read("k8s.yaml")))
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    services = [d for d in documents if d["kind"] == "Service"]
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == yaml.safe_load(_read("docker-compose.yml"))["services"]["lmiqa"]["image"]
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == "/v1/models/lmiqa" and probe["port"] == 8501
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) <= set(container["resources"]["limits"])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/models/lmiqa"] == "exports"
    config_volume = next(v for v in pod["volumes"] if v["name"] == mounts[CONFIG_MOUNT])
    names = ("models.config", "batching_parameters.txt", "monitoring.config")
    flags = _flags(container["args"])
    _check_server_flags(flags, {f"{CONFIG_MOUNT}/{n}": n for n in names if "configMap" in config_volume})
    assert {p["containerPort"] for p in container["ports"]} == {8500, 8501}
    main = next(s for s in services if s["spec"].get("clusterIP") != "None")
    assert {p["port"] for p in main["spec"]["ports"]} == {8500, 8501}
    assert all(s["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"] for s in services)
    from tfs_config_protos import BatchingParameters

    threads = text_format.Parse(_read("batching_parameters.txt"), BatchingParameters()).num_batch_threads.value
    assert threads == int(container["resources"]["limits"]["cpu"])  # one batch thread per core


def test_readme_covers_operations():
    text = _read("README.md").lower()
    for topic in ("roll back", "scale out", "envoy", "tls", "tensorflow_model_server", "development server",
                  "specific { versions", "grpc_max_threads", "2.21.0",
                  # what TF Serving itself does about memory per request and partly copied versions
                  "num_batch_threads", "max_enqueued_batches", "tf_onednn_use_system_allocator",
                  "max_num_load_retries", "load_retry_interval_micros", "file_system_poll_wait_seconds"):
        assert topic in text, topic
