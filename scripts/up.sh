#!/usr/bin/env bash
# `make up`: start Airflow standalone (SQLite) on the embedded state folder, DAGs unpaused,
# and print where to log in. The environment comes from the Makefile.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
export PATH="$PWD/$bin:$PATH"  # standalone starts its components as `airflow ...`
mkdir -p "$AIRFLOW_HOME" "$MLOPS_STATE_DIR"

# Standalone generates the admin password on first start and keeps it here.
passwords="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
url="http://localhost:${AIRFLOW__API__PORT}"

# Its own process group, so that stopping `make up` stops every Airflow component with it.
setsid "$bin/airflow" standalone > "$AIRFLOW_HOME/standalone.log" 2>&1 &
airflow_pid=$!
trap 'kill -TERM -- "-$airflow_pid" 2>/dev/null; wait "$airflow_pid" 2>/dev/null' INT TERM EXIT

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
DAGs are unpaused; feature_pipeline runs daily on the replay of the 2013 New York flights.
Press Ctrl-C to stop.
INFO
wait "$airflow_pid"
