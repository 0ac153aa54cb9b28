#!/usr/bin/env bash
# Fails with the install command when Python 3.11+ or Java 17+ is missing.
set -euo pipefail
PY="${1:-python3}"
if ! command -v "$PY" >/dev/null 2>&1 || ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "ERROR: Python 3.11+ is required ($PY). On Debian/Ubuntu: sudo apt-get install -y python3 python3-venv" >&2
  exit 1
fi
if ! command -v java >/dev/null 2>&1; then
  echo "ERROR: Java 17+ is required by Spark and was not found." >&2
  echo "       On Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless" >&2
  exit 1
fi
major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
if [ -z "$major" ] || [ "$major" -lt 17 ]; then
  echo "ERROR: Java 17+ is required by Spark; found: $(java -version 2>&1 | head -1)" >&2
  echo "       On Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless" >&2
  exit 1
fi
