"""Airflow DAG: a scheduled dpsynth synthesis run with the Apache Beam provider.

Install beside Airflow: apache-airflow-providers-apache-beam (pinned in
deploy/schedule/airflow-requirements.txt) and, for runner=DataflowRunner (and,
in provider 6.x, for executing the operator at all), apache-airflow-providers-google.
The Airflow worker needs dpsynth installed (`pip install dpsynth` or the
project's image) because the operator runs `python3 -m beam_pipeline.synthesize`.

Privacy: every run is a new DP release of its input. Runs over overlapping
data compose: n weekly runs over the same table spend n x epsilon on its
records. Point `input` at each period's new data only, or budget for it.

Class labels go in --class-labels: the operator always sets Beam's own
--labels (Dataflow job labels, {"airflow-version": ...}), which dpsynth hands
to Beam untouched.

Each run writes to OUTPUT_ROOT/<logical date> so that runs never overwrite one
another and a retry of an unfinished run (nothing published: outputs are
written atomically) reuses the same directory.
"""
from __future__ import annotations

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2.10+
    from airflow import DAG
    from airflow.models.param import Param

from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator

DAG_ID = "dpsynth_synthesize"

with DAG(
    dag_id=DAG_ID,
    description="DP synthetic embeddings from the period's embeddings table",
    schedule="0 3 * * 1",  # Mondays 03:00 UTC
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,  # never back-fill: each missed run would spend privacy budget
    max_active_runs=1,
    # Templates render to Python objects: beam_options arrives as a dict.
    render_template_as_native_obj=True,
    default_args={"retries": 1, "retry_delay": pendulum.duration(minutes=10)},
    params={
        "input": Param("gs://CHANGE-ME/embeddings/*.parquet", type="string",
                       description="Parquet file(s) with the embedding and label columns"),
        "output_root": Param("gs://CHANGE-ME/synthetic", type="string",
                             description="each run writes OUTPUT_ROOT/<logical date>"),
        "epsilon": Param(1.0, type="number", exclusiveMinimum=0),
        "delta": Param(1e-5, type="number", exclusiveMinimum=0, exclusiveMaximum=1),
        "labels": Param("", type="string",
                        description="public label set, comma-separated; empty = DP label discovery"),
        "embedding_column": Param("embedding", type="string"),
        "label_column": Param("label", type="string"),
        "runner": Param("DirectRunner", type="string",
                        enum=["DirectRunner", "DataflowRunner", "FlinkRunner", "PortableRunner",
                              "beam_pipeline.dask_runner.DaskRunner"]),
        # Runner options as a JSON object, e.g. for Dataflow:
        # {"project": "...", "region": "...", "temp_location": "gs://...",
        #  "staging_location": "gs://...", "sdk_container_image": "...",
        #  "sdk_location": "container", "service_account_email": "...",
        #  "machine_type": "n2-standard-4", "max_num_workers": 10}
        "beam_options": Param({}, type="object"),
    },
    tags=["dpsynth", "differential-privacy"],
) as dag:
    BeamRunPythonPipelineOperator(
        task_id="synthesize",
        py_file="beam_pipeline.synthesize",
        py_options=["-m"],
        runner="{{ params.runner }}",
        default_pipeline_options="{{ params.beam_options }}",
        # Keys are the synthesis flags without their leading dashes; the
        # operator turns each into --key=value and drops None values.
        pipeline_options={
            "input": "{{ params.input }}",
            "output": "{{ params.output_root }}/{{ ds_nodash }}",
            "epsilon": "{{ params.epsilon }}",
            "delta": "{{ params.delta }}",
            "class-labels": "{{ params.labels or None }}",
            "embedding-column": "{{ params.embedding_column }}",
            "label-column": "{{ params.label_column }}",
        },
    )
