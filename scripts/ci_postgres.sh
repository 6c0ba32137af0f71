#!/usr/bin/env bash
# Start a local PostgreSQL server for the storage tests (CI runs as root on Debian) and
# print the URL they read from HADAMARD_BENCH_TEST_PG. Installs Debian's postgresql
# when it is missing. Usage: export HADAMARD_BENCH_TEST_PG=$(scripts/ci_postgres.sh)
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "installing PostgreSQL for the storage tests" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
read -r version cluster _ < <(pg_lsclusters -h | head -1)
if [ -z "${version:-}" ]; then  # a package that made no cluster
  version=$(ls /usr/lib/postgresql | sort -n | tail -1)
  cluster=main
  pg_createcluster "$version" "$cluster" >&2
fi
pg_ctlcluster "$version" "$cluster" start >&2 2>/dev/null || true  # already running is fine
port=$(pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c {print $3}')
for _ in $(seq 30); do
  su postgres -c "psql -p $port -qtAc 'select 1'" >/dev/null 2>&1 && break
  sleep 1
done
# A superuser, so that each test can make and drop its own database.
su postgres -c "psql -p $port -qc \"DO \\\$\\\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hadamard')
  THEN CREATE ROLE hadamard LOGIN SUPERUSER PASSWORD 'hadamard'; END IF; END \\\$\\\$\"" >&2
echo "postgresql+psycopg://hadamard:hadamard@127.0.0.1:$port/postgres"
