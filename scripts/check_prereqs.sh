#!/usr/bin/env bash
# What the two commands need beyond Python packages, checked before anything starts.
#   check_prereqs.sh [python]          make demo / make venv: Python 3.11+, Java 17+, libgomp1
#   check_prereqs.sh --tests [python]  make test, also: PostgreSQL server binaries (throwaway
#                                      servers), docker-compose (static check of the file) and
#                                      chromium (the on-call view's browser test)
# On a miss: one line per missing piece, then the exact install command, exit 1.
set -euo pipefail
tests=0
if [ "${1:-}" = "--tests" ]; then tests=1; shift; fi
PY="${1:-python3}"
missing=()
packages=()
if ! command -v "$PY" >/dev/null 2>&1 || ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  missing+=("Python 3.11+ ($PY)"); packages+=(python3 python3-venv)
fi
major=""
if command -v java >/dev/null 2>&1; then
  major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
fi
if [ -z "$major" ] || [ "$major" -lt 17 ]; then
  missing+=("Java 17+ for Spark (found: $(java -version 2>&1 | head -1 || echo none))")
  packages+=(openjdk-17-jre-headless)
fi
# Read the cache whole first: under pipefail, `ldconfig -p | grep -q` fails whenever grep
# exits on its match before ldconfig has written everything (SIGPIPE), a false "missing".
libs=$(ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null || true)
if ! grep -q "libgomp.so.1" <<<"$libs"; then
  missing+=("libgomp1 (OpenMP): the grid ALS layouts run implicit's kernels"); packages+=(libgomp1)
fi
if [ "$tests" = 1 ]; then
  if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing+=("PostgreSQL server binaries (initdb, pg_ctl): the tests start throwaway servers")
    packages+=(postgresql)
  elif [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    missing+=("a 'postgres' system user: initdb refuses to run as root")
    packages+=(postgresql)
  fi
  if [ ! -x /usr/bin/chromium ]; then
    missing+=("chromium: the on-call view's browser test drives Debian's /usr/bin/chromium")
    packages+=(chromium)
  fi
  if ! command -v docker-compose >/dev/null 2>&1; then
    missing+=("docker-compose: docker-compose.yaml is checked with 'docker-compose config' (no engine needed)")
    packages+=(docker-compose)
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  for m in "${missing[@]}"; do echo "MISSING: $m" >&2; done
  echo "Install on Debian/Ubuntu: sudo apt-get install -y --no-install-recommends ${packages[*]}" >&2
  exit 1
fi
