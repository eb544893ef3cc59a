#!/usr/bin/env bash
# Build and launch dpsynth on Google Cloud Dataflow.
#
#   deploy/dataflow/launch.sh image      build and push the worker+launcher image (Cloud Build)
#   deploy/dataflow/launch.sh template   write the Flex Template spec to $TEMPLATE_PATH
#   deploy/dataflow/launch.sh run        launch a job from the Flex Template
#   deploy/dataflow/launch.sh direct     submit from this machine, no template (needs the project installed here)
#
# Configuration comes from the environment (all gs:// paths in the job's region):
#   PROJECT, REGION                     GCP project and Dataflow region (required)
#   IMAGE                               e.g. REGION-docker.pkg.dev/PROJECT/dpsynth/dpsynth:0.1.0 (required)
#   TEMP_LOCATION, STAGING_LOCATION     gs://bucket/tmp, gs://bucket/staging (required)
#   TEMPLATE_PATH                       gs://bucket/templates/dpsynth.json (template, run)
#   SERVICE_ACCOUNT                     worker service account e-mail (recommended)
#   MACHINE_TYPE (n2-standard-4)  MAX_WORKERS (10)  JOB_NAME (dpsynth-<UTC time>)
#   INPUT, OUTPUT, EPSILON, DELTA       the synthesis job (run, direct; required)
#   SYNTH_PARAMS                        more synthesis parameters, `;`-separated name=value
#                                       pairs using template names, e.g. "labels=a,b,c;rounds=2"
#   DRY_RUN=1                           print the commands instead of running them
#
# The workers run the same image as the launcher (sdk_container_image): one
# image, one set of pinned dependencies, nothing installed at worker start.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

die() { echo "launch.sh: $*" >&2; exit 2; }
need() { for v in "$@"; do [[ -n "${!v:-}" ]] || die "set $v"; done; }
run() {
  if [[ "${DRY_RUN:-0}" == "1" ]]; then printf '%q ' "$@"; echo; else "$@"; fi
}

MACHINE_TYPE="${MACHINE_TYPE:-n2-standard-4}"
MAX_WORKERS="${MAX_WORKERS:-10}"
JOB_NAME="${JOB_NAME:-dpsynth-$(date -u +%Y%m%d-%H%M%S)}"

# gcloud splits --parameters on commas; labels contain commas, so use gcloud's
# alternate-delimiter syntax (^;^) and separate pairs with ';'.
template_parameters() {
  local params="input=${INPUT};output=${OUTPUT};epsilon=${EPSILON};delta=${DELTA}"
  params+=";sdk_container_image=${IMAGE}"
  [[ -n "${SYNTH_PARAMS:-}" ]] && params+=";${SYNTH_PARAMS}"
  echo "^;^${params}"
}

cmd="${1:-}"
case "$cmd" in
  image)
    need PROJECT REGION IMAGE
    # Cloud Build reads docker/Dockerfile from the repository root context.
    run gcloud builds submit "$root" --project="$PROJECT" --region="$REGION" \
        --config="$here/cloudbuild.yaml" --substitutions="_IMAGE=$IMAGE"
    ;;
  template)
    need PROJECT IMAGE TEMPLATE_PATH
    run gcloud dataflow flex-template build "$TEMPLATE_PATH" --project="$PROJECT" \
        --image="$IMAGE" --sdk-language=PYTHON \
        --metadata-file="$here/metadata.json"
    ;;
  run)
    need PROJECT REGION IMAGE TEMPLATE_PATH TEMP_LOCATION STAGING_LOCATION INPUT OUTPUT EPSILON DELTA
    extra=()
    [[ -n "${SERVICE_ACCOUNT:-}" ]] && extra+=(--service-account-email="$SERVICE_ACCOUNT")
    run gcloud dataflow flex-template run "$JOB_NAME" --project="$PROJECT" --region="$REGION" \
        --template-file-gcs-location="$TEMPLATE_PATH" \
        --temp-location="$TEMP_LOCATION" --staging-location="$STAGING_LOCATION" \
        --worker-machine-type="$MACHINE_TYPE" --max-workers="$MAX_WORKERS" \
        "${extra[@]}" \
        --parameters="$(template_parameters)"
    ;;
  direct)
    need PROJECT REGION IMAGE TEMP_LOCATION STAGING_LOCATION INPUT OUTPUT EPSILON DELTA
    extra=()
    [[ -n "${SERVICE_ACCOUNT:-}" ]] && extra+=(--service_account_email="$SERVICE_ACCOUNT")
    IFS=';' read -r -a synth <<<"${SYNTH_PARAMS:-}"
    for kv in "${synth[@]}"; do extra+=("--${kv}"); done
    # Template-style names (`--max_clusters=4`) are accepted by flex_main.py.
    run env PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON:-python}" "$here/flex_main.py" --input="$INPUT" --output="$OUTPUT" \
        --epsilon="$EPSILON" --delta="$DELTA" \
        --runner=DataflowRunner --project="$PROJECT" --region="$REGION" \
        --job_name="$JOB_NAME" \
        --temp_location="$TEMP_LOCATION" --staging_location="$STAGING_LOCATION" \
        --machine_type="$MACHINE_TYPE" --max_num_workers="$MAX_WORKERS" \
        --sdk_container_image="$IMAGE" --sdk_location=container \
        --experiments=use_runner_v2 \
        "${extra[@]}"
    ;;
  *)
    sed -n '2,22p' "$0" >&2
    exit 2
    ;;
esac
