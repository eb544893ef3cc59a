"""Static checks of what cannot run here: Dataflow, Flink, docker build, Airflow.

Each test reads a deployment file and checks it against the code it drives:
the image tag against the pinned Beam, the template parameters against the
CLI's flags, the runner flags against Beam's own PipelineOptions parser, and
the DAG against the Airflow provider (imported in a separate venv, because
Airflow 3 needs attrs>=24 and dp-accounting pins attrs<24).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path
from unittest import mock

import pytest
import yaml
from apache_beam.options.pipeline_options import (
    DebugOptions,
    FlinkRunnerOptions,
    GoogleCloudOptions,
    PipelineOptions,
    PortableOptions,
    StandardOptions,
    WorkerOptions,
)

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DATAFLOW = ROOT / "deploy" / "dataflow"
FLINK = ROOT / "deploy" / "flink"
SCHEDULE = ROOT / "deploy" / "schedule"

# Template parameters that are Beam options, not synthesis flags.
BEAM_TEMPLATE_PARAMETERS = {"sdk_container_image"}
REQUIRED = {"input", "output", "epsilon", "delta"}
# The template/DAG name of the public label set flag.
LABELS_DEST = "labels"


def pinned(name: str, requirements: str = "core") -> str:
    for line in (ROOT / "requirements" / f"{requirements}.txt").read_text().splitlines():
        m = re.match(rf"^{re.escape(name)}==([^\s#;]+)", line.strip(), re.IGNORECASE)
        if m:
            return m.group(1)
    raise AssertionError(f"{name} is not pinned in requirements/{requirements}.txt")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return out


def load_flex_main():
    spec = importlib.util.spec_from_file_location("flex_main", DATAFLOW / "flex_main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Captured(Exception):
    pass


def synthesize_parser() -> argparse.ArgumentParser:
    """The very parser `dpsynth synthesize` builds, caught before it parses anything."""
    options = pytest.importorskip("beam_pipeline.options")
    synthesize = pytest.importorskip("beam_pipeline.synthesize")
    captured: dict[str, argparse.ArgumentParser] = {}
    real_make_parser = options.make_parser

    def capturing(*args, **kwargs):
        parser = real_make_parser(*args, **kwargs)

        def stop(*_a, **_k):
            captured["parser"] = parser
            raise _Captured

        parser.parse_known_args = stop
        return parser

    with mock.patch.object(options, "make_parser", capturing):
        with pytest.raises(_Captured):
            synthesize.run(["--help"])
    parser = captured["parser"]
    del parser.parse_known_args  # back to the class's method
    return parser


def synthesis_dests(parser: argparse.ArgumentParser) -> set[str]:
    return {a.dest for a in parser._actions
            if any(o.startswith("--") for o in a.option_strings) and not isinstance(a, argparse._HelpAction)}


# ------------------------------------------------------------------ docker/

def test_base_image_matches_pinned_beam_and_tested_python():
    froms = [args for word, args in dockerfile_instructions() if word == "FROM"]
    worker = next(f for f in froms if f.endswith(" AS worker"))
    m = re.fullmatch(r"apache/beam_python(\d+)\.(\d+)_sdk:(\S+) AS worker", worker)
    assert m, worker
    assert m.group(3) == pinned("apache-beam"), "the worker SDK must be the submitting SDK"
    assert (int(m.group(1)), int(m.group(2))) == sys.version_info[:2], \
        "the image's Python must be the one the project is tested on (pickled code crosses)"
    launcher = next(args for word, args in dockerfile_instructions()
                    if word == "ARG" and args.startswith("LAUNCHER_IMAGE="))
    assert f"python{m.group(1)}{m.group(2)}-template-launcher-base" in launcher


def test_dockerfile_installs_pinned_torch_first_and_keeps_beam_boot():
    steps = dockerfile_instructions()
    runs = [args for word, args in steps if word == "RUN"]
    torch_step = next(i for i, r in enumerate(runs) if "requirements/torch.txt" in r)
    deps_step = next(i for i, r in enumerate(runs) if "requirements/${group}.txt" in r)
    assert torch_step < deps_step, "torch must be installed alone and first (CPU index)"
    assert "TORCH_INDEX_URL" in runs[torch_step]
    arg = next(a for w, a in steps if w == "ARG" and a.startswith("TORCH_INDEX_URL="))
    assert arg.endswith("/whl/cpu"), "CPU torch is the default; the GPU variant is a build arg"
    assert "pip check" in runs[deps_step]
    assert any("pip install --no-deps ." in r for r in runs), "the project installs without re-resolving"
    entrypoints = [a for w, a in steps if w == "ENTRYPOINT"]
    assert entrypoints and all(json.loads(e) == ["/opt/apache/beam/boot"] for e in entrypoints)
    stages = [a.split(" AS ")[-1] for w, a in steps if w == "FROM"]
    assert stages == ["worker", "template-launcher", "flex-template"], stages
    env = " ".join(a for w, a in steps if w == "ENV")
    assert "FLEX_TEMPLATE_PYTHON_PY_FILE=/opt/dpsynth/deploy/dataflow/flex_main.py" in env


def test_dockerfile_copies_only_existing_paths_and_dockerignore_keeps_them():
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for word, args in dockerfile_instructions():
        if word != "COPY" or args.startswith("--from"):
            continue
        *sources, _dest = args.split()
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: no such path in the build context"
            top = src.strip("/").split("/")[0]
            assert top not in ignored, f".dockerignore excludes {src}"


# ------------------------------------------------------------------ deploy/dataflow

def test_metadata_lists_every_synthesis_flag():
    meta = json.loads((DATAFLOW / "metadata.json").read_text())
    assert meta["name"] and meta["description"]
    params = meta["parameters"]
    names = [p["name"] for p in params]
    assert len(names) == len(set(names)), "duplicate template parameter"
    for p in params:
        assert {"name", "label", "helpText"} <= p.keys(), p
        assert re.fullmatch(r"[a-z][a-z0-9_]*", p["name"]), p["name"]
        for rx in p.get("regexes", []):
            re.compile(rx)
        assert p.get("isOptional", False) == (p["name"] not in REQUIRED), p["name"]
    flags = synthesis_dests(synthesize_parser())
    assert set(names) - BEAM_TEMPLATE_PARAMETERS == flags, \
        "deploy/dataflow/metadata.json and `dpsynth synthesize` (beam_pipeline/options.py) disagree"


def test_flex_main_knows_every_synthesize_flag():
    real = synthesize_parser()
    mine = load_flex_main().synthesis_parser()

    def spellings(parser):
        return {(opt, a.nargs == 0) for a in parser._actions for opt in a.option_strings if opt.startswith("--")}

    assert spellings(mine) - {("--help", True)} == spellings(real) - {("--help", True)}


def test_metadata_regexes_accept_typical_values():
    params = {p["name"]: p for p in json.loads((DATAFLOW / "metadata.json").read_text())["parameters"]}
    samples = {"input": "gs://b/emb/*.parquet", "output": "gs://b/out", "epsilon": "1", "delta": "1e-5",
               "num_samples": "5000", "max_clusters": "10", "rounds": "2", "radius": "1.0",
               "clip_mode": "normalize", "covariance": "diagonal", "class_balance": "balanced",
               "overwrite": "true", "rejected_output": "gs://b/rejected"}
    for name, value in samples.items():
        for rx in params[name].get("regexes", []):
            assert re.match(rx, value), (name, value, rx)
    assert not any(re.match(rx, "/local/path") for rx in params["input"]["regexes"])


def test_flex_main_translates_template_parameters_into_a_valid_config():
    options = pytest.importorskip("beam_pipeline.options")
    flex = load_flex_main()
    parser = flex.synthesis_parser()
    argv = ["--input=gs://b/in/*.parquet", "--output=gs://b/out", "--epsilon=2", "--delta=1e-6",
            f"--{LABELS_DEST}=a,b,c", "--embedding_column=vec", "--label_column=y", "--rounds=2",
            "--max_clusters=4", "--num_samples=", "--overwrite=true",
            "--sdk_container_image=r/dpsynth:1", "--project=p", "--region=europe-west1",
            "--temp_location=gs://b/tmp"]
    out = flex.translate(argv, parser)
    args, rest = synthesize_parser().parse_known_args(out)
    config = options.config_from_args(args)
    assert (config.epsilon, config.delta, config.rounds, config.max_clusters) == (2.0, 1e-6, 2, 4)
    assert [str(x) for x in config.labels] == ["a", "b", "c"]
    assert args.overwrite is True and args.input == "gs://b/in/*.parquet"
    assert args.embedding_column == "vec" and args.label_column == "y"
    assert config.num_samples is None, "an empty optional parameter means the default"
    beam = PipelineOptions(rest)
    assert beam.view_as(WorkerOptions).sdk_container_image == "r/dpsynth:1"
    assert beam.view_as(GoogleCloudOptions).project == "p"
    assert flex.translate(["--overwrite=false"], parser) == []
    from dpsynth.errors import UserError

    with pytest.raises(UserError):
        flex.translate(["--overwrite=maybe"], parser)


def _launch(cmd: str, **env) -> list[str]:
    base = {"DRY_RUN": "1", "PROJECT": "p", "REGION": "europe-west1", "IMAGE": "r/dpsynth:1",
            "TEMPLATE_PATH": "gs://b/t.json", "TEMP_LOCATION": "gs://b/tmp", "STAGING_LOCATION": "gs://b/st",
            "INPUT": "gs://b/in/*.parquet", "OUTPUT": "gs://b/out", "EPSILON": "1", "DELTA": "1e-5",
            "SERVICE_ACCOUNT": "sa@p.iam.gserviceaccount.com", "MAX_WORKERS": "7", "PATH": os.environ["PATH"]}
    base.update(env)
    proc = subprocess.run(["bash", str(DATAFLOW / "launch.sh"), cmd], env=base, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return shlex.split(proc.stdout)


def test_launch_script_run_passes_every_dataflow_setting():
    argv = _launch("run", SYNTH_PARAMS=f"{LABELS_DEST}=a,b,c;rounds=2")
    assert argv[:4] == ["gcloud", "dataflow", "flex-template", "run"]
    joined = " ".join(argv)
    for flag in ("--project=p", "--region=europe-west1", "--template-file-gcs-location=gs://b/t.json",
                 "--temp-location=gs://b/tmp", "--staging-location=gs://b/st", "--max-workers=7",
                 "--service-account-email=sa@p.iam.gserviceaccount.com", "--worker-machine-type=n2-standard-4"):
        assert flag in argv, flag
    params = next(a for a in argv if a.startswith("--parameters="))[len("--parameters="):]
    assert params.startswith("^;^"), "labels hold commas: gcloud needs the alternate delimiter"
    pairs = dict(kv.split("=", 1) for kv in params[3:].split(";"))
    meta_names = {p["name"] for p in json.loads((DATAFLOW / "metadata.json").read_text())["parameters"]}
    assert set(pairs) <= meta_names, set(pairs) - meta_names
    assert pairs["sdk_container_image"] == "r/dpsynth:1" and pairs[LABELS_DEST] == "a,b,c"
    assert "gcloud" in joined


def test_launch_script_direct_flags_parse_in_beam():
    argv = _launch("direct", SYNTH_PARAMS="rounds=2")
    py = argv.index(str(DATAFLOW / "flex_main.py"))
    beam = PipelineOptions(argv[py + 1:])
    assert beam.view_as(StandardOptions).runner == "DataflowRunner"
    gcp = beam.view_as(GoogleCloudOptions)
    assert (gcp.project, gcp.region, gcp.temp_location, gcp.staging_location) == \
        ("p", "europe-west1", "gs://b/tmp", "gs://b/st")
    assert gcp.service_account_email == "sa@p.iam.gserviceaccount.com"
    worker = beam.view_as(WorkerOptions)
    assert (worker.machine_type, worker.max_num_workers, worker.sdk_container_image) == \
        ("n2-standard-4", 7, "r/dpsynth:1")
    assert "use_runner_v2" in beam.view_as(DebugOptions).experiments


def test_launch_script_refuses_missing_settings():
    proc = subprocess.run(["bash", str(DATAFLOW / "launch.sh"), "run"], env={"PATH": os.environ["PATH"], "DRY_RUN": "1"},
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "set PROJECT" in proc.stderr


def test_cloudbuild_builds_the_flex_template_stage():
    build = yaml.safe_load((DATAFLOW / "cloudbuild.yaml").read_text())
    args = build["steps"][0]["args"]
    assert args[args.index("-f") + 1] == "docker/Dockerfile"
    assert args[args.index("--target") + 1] == "flex-template"
    assert build["images"] == ["${_IMAGE}"]


# ------------------------------------------------------------------ deploy/flink

def test_flink_compose_versions_and_wiring():
    compose = yaml.safe_load((FLINK / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"jobmanager", "taskmanager", "worker-pool", "jobserver", "submit"} <= services.keys()
    m = re.fullmatch(r"apache/beam_flink(\d+\.\d+)_job_server:(\S+)", services["jobserver"]["image"])
    assert m and m.group(2) == pinned("apache-beam")
    flink_version = m.group(1)
    assert flink_version in FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS
    for name in ("jobmanager", "taskmanager"):
        assert services[name]["image"].startswith(f"flink:{flink_version}"), services[name]["image"]
    assert "--flink-master=jobmanager:8081" in services["jobserver"]["command"]
    pool = services["worker-pool"]
    assert pool["network_mode"] == "service:taskmanager", "the pool must be on the task manager's localhost"
    assert pool["entrypoint"] == ["/opt/apache/beam/boot", "--worker_pool"]
    submit = services["submit"]["entrypoint"]
    assert submit[:2] == ["dpsynth", "synthesize"]
    beam = PipelineOptions(submit[2:])
    portable = beam.view_as(PortableOptions)
    assert beam.view_as(StandardOptions).runner == "PortableRunner"
    assert portable.job_endpoint == "jobserver:8099"
    assert (portable.environment_type, portable.environment_config) == ("EXTERNAL", "localhost:50000")
    assert services["worker-pool"]["volumes"] == services["submit"]["volumes"], "paths must match on both"


def test_flink_remote_flags_parse_in_beam():
    lines = [line.strip() for line in (FLINK / "remote.flags").read_text().splitlines()]
    flags = [line for line in lines if line and not line.startswith("#")]
    beam = PipelineOptions(flags)
    assert not beam.get_all_options(retain_unknown_options=True).get("unknown")
    flink = beam.view_as(FlinkRunnerOptions)
    assert beam.view_as(StandardOptions).runner == "FlinkRunner"
    assert flink.flink_master.endswith(":8081")
    assert flink.flink_version in FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS
    assert flink.flink_submit_uber_jar is True
    assert beam.view_as(PortableOptions).environment_type == "EXTERNAL"
    # Every flag is one Beam knows (a typo would be silently dropped by Beam).
    known = set()
    parser = argparse.ArgumentParser(conflict_handler="resolve")
    pending = list(PipelineOptions.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        cls._add_argparse_args(parser)
    for action in parser._actions:
        known.update(action.option_strings)
    for flag in flags:
        assert flag.split("=", 1)[0] in known, flag


# ------------------------------------------------------------------ deploy/schedule

def test_cronjob_parses_and_runs_the_cli():
    docs = list(yaml.safe_load_all((SCHEDULE / "cronjob.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert kinds.keys() == {"ConfigMap", "CronJob"}
    cron = kinds["CronJob"]
    assert cron["apiVersion"] == "batch/v1"
    spec = cron["spec"]
    assert len(spec["schedule"].split()) == 5
    assert spec["concurrencyPolicy"] == "Forbid", "two overlapping runs would be two releases"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    container = pod["containers"][0]
    assert container["envFrom"][0]["configMapRef"]["name"] == kinds["ConfigMap"]["metadata"]["name"]
    script = container["args"][0]
    assert script.startswith("exec dpsynth synthesize")
    config = kinds["ConfigMap"]["data"]
    for var in re.findall(r"\$([A-Z_]+)", script):
        assert var in config, f"${var} is not set by the ConfigMap"
    # Expand the shell variables and parse the whole command line as the CLI would.
    argv = shlex.split(re.sub(r"\$\(date[^)]*\)", "20260105", script))[3:]
    argv = [a for arg in argv for a in
            (config[arg[1:]].split() if arg.startswith("$") else [re.sub(r"\$([A-Z_]+)", lambda m: config[m.group(1)], arg)])]
    parser = synthesize_parser()
    args, rest = parser.parse_known_args(argv)
    assert args.output.endswith("/20260105") and args.epsilon == 1.0
    beam = PipelineOptions(rest)
    assert beam.view_as(StandardOptions).runner == "DataflowRunner"
    assert beam.view_as(WorkerOptions).sdk_container_image == container["image"], \
        "the launching pod and the workers must run the same image"


AIRFLOW_VENV = ROOT / ".cache" / "airflow-venv"


def airflow_python() -> Path:
    """A venv with the pinned Airflow + Beam provider, layered over this interpreter's packages.

    Built once (about 2 minutes, 300 MB) and reused; rebuilt when the pins
    change. Airflow's own attrs shadows dp-accounting's older pin only inside it.
    """
    reqs = SCHEDULE / "airflow-requirements.txt"
    nodeps = SCHEDULE / "airflow-google-nodeps.txt"
    pins = reqs.read_text() + nodeps.read_text()
    python = AIRFLOW_VENV / "bin" / "python"
    stamp = AIRFLOW_VENV / ".pins"
    if python.exists() and stamp.exists() and stamp.read_text() == pins:
        return python
    if os.environ.get("DPSYNTH_SKIP_AIRFLOW") == "1":
        pytest.skip("DPSYNTH_SKIP_AIRFLOW=1 and no Airflow venv built")
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--clear", str(AIRFLOW_VENV)],
                   check=True, timeout=120)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "_dpsynth_base.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["-r", str(reqs)], check=True, timeout=900)
    subprocess.run(pip + ["--no-deps", "-r", str(nodeps)], check=True, timeout=300)
    stamp.write_text(pins)
    return python


AIRFLOW_PROBE = textwrap.dedent("""
    import json, os, sys
    try:  # Airflow 3.1+
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1])
    out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": sorted(bag.dag_ids)}
    if not bag.import_errors:
        dag = bag.dags["dpsynth_synthesize"]
        task = dag.get_task("synthesize")
        params = {k: (v.value if hasattr(v, "value") else v) for k, v in dag.params.items()}
        params.update(json.loads(sys.argv[2]))
        context = {"params": params, "ds_nodash": "20260105"}
        # What execute() hands to the Beam hook: rendered options in snake_case,
        # plus the job label the provider always adds, turned into argv.
        from airflow.providers.apache.beam.hooks.beam import beam_options_to_args
        from airflow.utils.helpers import convert_camel_to_snake
        dag.render_template_as_native_obj = True
        task.render_template_fields(context)
        options = dict(task.default_pipeline_options)
        options.update(task.pipeline_options)
        options = {convert_camel_to_snake(k): v for k, v in options.items()}
        out.update(type=type(task).__name__, py_file=task.py_file, py_options=task.py_options,
                   runner=task.runner, schedule=str(dag.schedule),
                   catchup=dag.catchup, max_active_runs=dag.max_active_runs)
        try:
            # As BeamRunPythonPipelineOperator.execute() does before starting the job.
            options.setdefault("labels", {}).update({"airflow-version": "v3"})
            out["argv"] = beam_options_to_args(options)
        except Exception as exc:
            out["execute_error"] = repr(exc)
    print("PROBE " + json.dumps(out, default=str))
""")


def run_airflow_probe(params: dict) -> dict:
    python = airflow_python()
    env = {**os.environ, "AIRFLOW_HOME": str(AIRFLOW_VENV / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__UNIT_TEST_MODE": "True", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([str(python), "-c", AIRFLOW_PROBE, str(SCHEDULE / "dpsynth_dag.py"), json.dumps(params)],
                          env=env, capture_output=True, text=True, timeout=300)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("PROBE ")), None)
    assert line, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(line[len("PROBE "):])


@pytest.fixture(scope="module")
def airflow_probe():
    return run_airflow_probe({"labels": "a,b,c", "runner": "DataflowRunner",
                              "beam_options": {"project": "p", "region": "europe-west1", "temp_location": "gs://b/t"}})


def test_airflow_dag_imports_with_the_beam_provider(airflow_probe):
    probe = airflow_probe
    assert probe["errors"] == {}, probe["errors"]
    assert probe["dags"] == ["dpsynth_synthesize"]
    assert probe["type"] == "BeamRunPythonPipelineOperator"
    assert (probe["py_options"], probe["py_file"]) == (["-m"], "beam_pipeline.synthesize")
    assert probe["catchup"] is False and probe["max_active_runs"] == 1
    assert probe["runner"] == "DataflowRunner"


def test_airflow_task_command_parses_into_the_intended_config(airflow_probe):
    probe = airflow_probe
    assert "execute_error" not in probe, probe.get("execute_error")
    argv = probe["argv"]
    assert "--output=gs://CHANGE-ME/synthetic/20260105" in argv
    parser = synthesize_parser()
    args, rest = parser.parse_known_args(argv)
    options = pytest.importorskip("beam_pipeline.options")
    rest = options.forward_job_labels(args, rest)  # the operator's job labels go back to Beam
    config = options.config_from_args(args)
    assert [str(x) for x in config.labels] == ["a", "b", "c"]
    assert any(arg.startswith("--labels=") and "airflow-version" in arg for arg in rest)
    assert config.epsilon == 1.0 and config.delta == 1e-5
    assert PipelineOptions(rest).view_as(GoogleCloudOptions).project == "p"


# ------------------------------------------------------------------ portable representation

@pytest.mark.parametrize("labels", [("a", "b", "c"), None], ids=["public-labels", "dp-label-discovery"])
def test_pipeline_serialises_to_the_portable_representation(labels, tmp_path):
    """What PortableRunner, Flink and Dataflow receive: the graph as a runner-API proto, and back."""
    import apache_beam as beam
    import pyarrow as pa
    from apache_beam.portability.api import beam_runner_api_pb2

    pipeline_mod = pytest.importorskip("beam_pipeline.pipeline")
    from dpsynth.calibration import plan_releases
    from dpsynth.params import SynthesisConfig

    config = SynthesisConfig(epsilon=1.0, delta=1e-6, labels=labels, rounds=2)
    plan = plan_releases(config, 8, discover_labels=labels is None)
    paths = pipeline_mod.JobPaths(synthetic_prefix=str(tmp_path / "synthetic"), gmm_json=str(tmp_path / "gmm.json"),
                                  diagnostics_json=str(tmp_path / "diag.json"), rejected_prefix=str(tmp_path / "rej"))
    schema = pa.schema([("embedding", pa.list_(pa.float32())), ("label", pa.string())])
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"embedding": [[0.5] * 8], "label": ["a"]}, schema=schema), tmp_path / "in-0.parquet")
    pipeline = beam.Pipeline(options=PipelineOptions([]))
    tables = pipeline | "ReadParquet" >> beam.io.ReadFromParquetBatched(str(tmp_path / "in-*.parquet"))
    pipeline_mod.build_synthesis(tables, config, plan, embedding_column="embedding", label_column="label",
                                 label_type=pa.string(), input_schema=schema, paths=paths)
    proto = pipeline.to_runner_api()
    wire = proto.SerializeToString()
    again = beam_runner_api_pb2.Pipeline.FromString(wire)
    assert again == proto
    names = {t.unique_name for t in again.components.transforms.values()}
    for step in ("ReadParquet", "ValidateAndBound"):
        assert any(n == step or n.startswith(step + "/") for n in names), step
    # Every leaf is either a Beam primitive or Python SDK code the workers run.
    sdk = {t.environment_id for t in again.components.transforms.values() if t.environment_id}
    assert sdk and sdk <= set(again.components.environments)
    rebuilt = beam.Pipeline.from_runner_api(again, pipeline.runner, pipeline._options)
    assert len(rebuilt.to_runner_api().components.transforms) == len(proto.components.transforms)
