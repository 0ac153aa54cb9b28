# The Spark image of docker-compose.yaml: the official Apache Spark image of the pinned pyspark
# version, plus the Python the Airflow image runs (PySpark needs the same minor version on the
# driver and the executors) with the libraries executors import: numpy, pandas, pyarrow, and
# for the grid ALS layouts implicit's CPU kernels (scipy, threadpoolctl; OpenMP's libgomp1).
ARG SPARK_VERSION=4.1.3
FROM apache/spark:${SPARK_VERSION}

USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv libgomp1 \
 && python3.11 -m venv /opt/musicrec-python \
 && /opt/musicrec-python/bin/pip install --no-cache-dir numpy==2.4.6 pandas==2.3.3 pyarrow==21.0.0 \
    implicit==0.7.2 scipy==1.17.1 threadpoolctl==3.8.0 \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
# Event logs, checkpoints and the data lake are shared volumes owned by the spark user.
RUN mkdir -p /data && chown spark /data
USER spark
