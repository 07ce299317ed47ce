#!/usr/bin/env bash
# `make up`: start Airflow standalone (SQLite) on the embedded state folder, DAGs unpaused,
# and print where to log in. The environment comes from the Makefile.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
export PATH="$PWD/$bin:$PATH"  # standalone starts its components as `airflow ...`
mkdir -p "$AIRFLOW_HOME" "$MLOPS_STATE_DIR"
# OpenLineage events of every run and task (the provider's listener), one JSON line each, in the state folder.
lineage='{"type": "file", "log_file_path": "'"$MLOPS_STATE_DIR"'/openlineage.jsonl", "append": true}'
export AIRFLOW__OPENLINEAGE__TRANSPORT="${AIRFLOW__OPENLINEAGE__TRANSPORT:-$lineage}"
export AIRFLOW__OPENLINEAGE__NAMESPACE="${AIRFLOW__OPENLINEAGE__NAMESPACE:-mlops}"

# Standalone generates the admin password on first start and keeps it here.
passwords="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
url="http://localhost:${AIRFLOW__API__PORT}"

mlflow_dir="$MLOPS_STATE_DIR/mlflow"
mlflow_url="http://localhost:${MLFLOW_PORT:-5000}"
mkdir -p "$mlflow_dir/artifacts"

# The replay clock (MLOPS_REPLAY_WEEKS_AHEAD picks the season); a state folder keeps the one it was
# built on, and another is refused here, before anything starts.
if ! clock=$("$bin/python" -m include.cli clock 2>"$AIRFLOW_HOME/clock.log"); then
  grep '^error:' "$AIRFLOW_HOME/clock.log" >&2 || cat "$AIRFLOW_HOME/clock.log" >&2
  exit 1
fi
replays=$("$bin/python" -c 'import json,sys; print(json.load(sys.stdin)["replays"])' <<< "$clock")

echo "Preparing the Airflow database and the pools ..."
"$bin/airflow" db migrate > "$AIRFLOW_HOME/migrate.log" 2>&1
while IFS=$'\t' read -r pool slots description; do
  "$bin/airflow" pools set "$pool" "$slots" "$description" > /dev/null
done < <(PYTHONPATH=plugins "$bin/python" -c \
  'from mlops_airflow.pools import POOLS; [print(n, s, d, sep="\t") for n, (s, d) in POOLS.items()]')

# Training needs features for its window: one manual run of feature_pipeline builds them up to the
# hour before the scheduler's first hourly run, in one go (a minute or two, where 1,500 hourly runs
# would take hours). The first weekly training_pipeline run the scheduler starts is the latest
# Monday's, up to 7 days ago; its window is the 8 weeks before that Monday, and its first
# predictions read the two days before the window: 65 days cover it on any day of the week.
# Queued before the scheduler starts, which then runs it; skipped when a previous `make up` built
# the history already.
"$bin/airflow" dags reserialize > "$AIRFLOW_HOME/reserialize.log" 2>&1
history_start="$(date -u -d '65 days ago' +%FT00:00:00+00:00)"
history_end="$(date -u -d '1 hour ago' +%FT%H:00:00+00:00)"
if [ -z "$(ls "$MLOPS_STATE_DIR"/lake/features/weather/ 2>/dev/null)" ]; then
  "$bin/airflow" dags trigger feature_pipeline --run-id "history__$(date -u +%Y%m%dT%H%M)" \
    --conf "{\"interval_start\": \"$history_start\", \"interval_end\": \"$history_end\"}" \
    > "$AIRFLOW_HOME/history.log" 2>&1 || echo "could not queue the feature history; see $AIRFLOW_HOME/history.log"
fi

# The training experiment, made before MLflow's server starts (it then finds its database ready), so
# that the banner can open it on its runs.
experiment=$("$bin/python" -c 'from include.mlops import settings, tracking
print(tracking.connect(settings.Settings.from_env()))' 2>"$AIRFLOW_HOME/mlflow-experiment.log") || {
  echo "could not prepare MLflow's training experiment; the end of its log:" >&2
  tail -n 20 "$AIRFLOW_HOME/mlflow-experiment.log" >&2
  exit 1
}

# Each in its own process group, so that stopping `make up` stops every component with it.
setsid "$bin/airflow" standalone > "$AIRFLOW_HOME/standalone.log" 2>&1 &
airflow_pid=$!
setsid "$bin/mlflow" server --host 127.0.0.1 --port "${MLFLOW_PORT:-5000}" \
  --backend-store-uri "sqlite:///$mlflow_dir/mlflow.db" \
  --default-artifact-root "file://$mlflow_dir/artifacts" > "$mlflow_dir/server.log" 2>&1 &
mlflow_pid=$!
trap 'kill -TERM -- "-$airflow_pid" "-$mlflow_pid" 2>/dev/null; wait 2>/dev/null' INT TERM EXIT

echo "Starting Airflow (log: $AIRFLOW_HOME/standalone.log) ..."
for _ in $(seq 1 180); do
  if ! kill -0 "$airflow_pid" 2>/dev/null; then
    echo "Airflow exited during start-up; the end of its log:" >&2
    tail -n 40 "$AIRFLOW_HOME/standalone.log" >&2
    exit 1
  fi
  if curl -fsS "$url/api/v2/monitor/health" >/dev/null 2>&1 && [ -s "$passwords" ]; then
    break
  fi
  sleep 2
done
if ! curl -fsS "$url/api/v2/monitor/health" >/dev/null 2>&1; then
  echo "Airflow did not answer at $url within 6 minutes; see $AIRFLOW_HOME/standalone.log" >&2
  exit 1
fi

password=$("$bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin"])' "$passwords")
cat <<INFO

Airflow is up: $url
  user:     admin
  password: $password   (kept in $passwords)
MLOps view:   $url/plugin/mlops   (in Airflow's navigation: the champion and why, the gate, drift)
MLflow UI:    $mlflow_url/#/experiments/$experiment?workflowType=machine_learning   (training runs; the model registry under Models)
Now replays:  $replays   (MLOPS_REPLAY_WEEKS_AHEAD=${MLOPS_REPLAY_WEEKS_AHEAD:-0} weeks ahead; 0 to 51 picks the season)
DAGs are unpaused: feature_pipeline runs hourly on the replay of the 2013 New York flights, after
one run that builds the last 65 days (a minute or two); training_pipeline runs weekly, or now from
its trigger form; once a model is champion, batch_inference predicts, on each hour's features, the
flights leaving 2 to 3 hours later, and drift_monitoring checks each day once its 24 hours are in.
Press Ctrl-C to stop.
INFO
wait "$airflow_pid"
