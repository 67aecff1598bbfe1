-- Runs once, when the postgres volume is created: Airflow uses the default database
-- (POSTGRES_DB=airflow), MLflow gets its own.
CREATE DATABASE mlflow OWNER looper;
