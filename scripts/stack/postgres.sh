#!/bin/sh
# The stack's PostgreSQL (scripts/install.sh), with the official image or Debian's postgresql
# package alike: a cluster made once in the volume, user `koyra` with the password of the
# Docker secret, database `koyra`, password logins only.
set -eu
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
PGDATA=/var/lib/postgresql/data/pgdata
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"
  chown -R postgres:postgres /var/lib/postgresql/data
  chmod 700 "$PGDATA"
  cp /run/secrets/koyra_postgres_password /tmp/pwfile
  chown postgres /tmp/pwfile
  as_pg "$PGBIN/initdb" -D "$PGDATA" -U koyra --pwfile=/tmp/pwfile -A scram-sha-256 -E UTF8
  rm -f /tmp/pwfile
  echo "CREATE DATABASE koyra OWNER koyra;" | as_pg "$PGBIN/postgres" --single -D "$PGDATA" postgres >/dev/null
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
fi
mkdir -p /var/run/postgresql && chown postgres /var/run/postgresql
exec setpriv --reuid=postgres --regid=postgres --init-groups \
  "$PGBIN/postgres" -D "$PGDATA" -c listen_addresses='*'
