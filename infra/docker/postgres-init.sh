#!/bin/sh
# Run once by the postgres image, on an empty data volume (/docker-entrypoint-initdb.d): a role of
# its own for MLflow and for Prefect, each owning its databases and nothing else (the superuser
# stays with the image's `postgres`). psql reads the passwords from the environment (\getenv) and
# quotes them itself (:'var'), so they are on no command line and need no escaping here.
set -eu
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres <<'EOSQL'
\getenv mlflow_password MLFLOW_DB_PASSWORD
\getenv prefect_password PREFECT_DB_PASSWORD
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE ROLE prefect LOGIN PASSWORD :'prefect_password';
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
CREATE DATABASE prefect OWNER prefect;
EOSQL
