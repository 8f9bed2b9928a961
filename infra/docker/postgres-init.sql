-- One Postgres, two databases: MLflow's tracking store and Prefect's.
CREATE DATABASE mlflow;
CREATE DATABASE prefect;
