-- The production stack's PostgreSQL holds three databases; the image creates `airflow`
-- (POSTGRES_DB) and this script, run once on an empty data volume, the other two.
CREATE DATABASE mlflow;
CREATE DATABASE feast;
