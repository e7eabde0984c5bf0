#!/usr/bin/env bash
# Install (Debian packages) and start PostgreSQL + PostGIS on loopback for the ledger tests.
# Writes the connection URL to .postgis-url; the tests read BUILDWATCH_TEST_PG_URL or that file.
set -eu
cd "$(dirname "$0")/.."
PGPORT=${PGPORT:-54329}
PGDATA=${PGDATA:-/tmp/buildwatch-pg}
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || ! ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "need root to apt-get install postgresql postgis" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || true
  ver=$(apt-cache search --names-only '^postgresql-[0-9]+-postgis-3$' | sort -V | tail -1 | sed -E 's/postgresql-([0-9]+)-postgis-3.*/\1/')
  apt-get install -y -qq --no-install-recommends "postgresql-$ver" "postgresql-$ver-postgis-3" >/dev/null
fi
BIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -1)")
id postgres >/dev/null 2>&1 || useradd -r postgres
if [ ! -f "$PGDATA/PG_VERSION" ]; then
  rm -rf "$PGDATA"; mkdir -p "$PGDATA"; chown postgres "$PGDATA"
  su postgres -c "$BIN/initdb -D $PGDATA -A trust -U postgres" >/dev/null
fi
if ! su postgres -c "$BIN/pg_ctl -D $PGDATA status" >/dev/null 2>&1; then
  su postgres -c "$BIN/pg_ctl -D $PGDATA -l $PGDATA/log -o '-p $PGPORT -k /tmp -c listen_addresses=127.0.0.1' -w start" >/dev/null
fi
su postgres -c "psql -h 127.0.0.1 -p $PGPORT -U postgres -tc \"SELECT 1 FROM pg_database WHERE datname='buildwatch_test'\"" | grep -q 1 \
  || su postgres -c "psql -h 127.0.0.1 -p $PGPORT -U postgres -c 'CREATE DATABASE buildwatch_test'" >/dev/null
su postgres -c "psql -h 127.0.0.1 -p $PGPORT -U postgres -d buildwatch_test -c 'CREATE EXTENSION IF NOT EXISTS postgis'" >/dev/null
echo "postgresql://postgres@127.0.0.1:$PGPORT/buildwatch_test" > .postgis-url
echo "PostGIS up: $(cat .postgis-url)"
