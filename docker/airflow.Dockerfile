# The Airflow image of docker-compose.yaml: the official image of the pinned Airflow version,
# plus Java 17 (spark-submit runs the Spark driver JVM in the Airflow task's container) and the
# project's exact requirements (pyspark, great-expectations, the Spark provider ...).
# The official image already ships the FAB auth manager provider used by docker-compose.yaml.
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}

USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64

USER airflow
COPY requirements.txt /opt/musicrec/requirements.txt
# Pin Airflow itself in the same command so pip cannot move it (Airflow's documented habit).
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/musicrec/requirements.txt
