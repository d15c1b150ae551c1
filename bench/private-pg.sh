# Sourced by the scripts in bench/: `start_private_pg DIR` starts a throwaway PostgreSQL in DIR
# from the newest server binaries on the machine (as the tests find them), durable commits, and
# sets DATABASE_URL to its `postgres` database and PG_DATA to its data directory;
# `stop_private_pg` stops it. As root, PostgreSQL runs as the `postgres` user.
start_private_pg() {
    local dir=$1 port run_as=()
    pg_bin=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres "$dir"; run_as=(runuser -u postgres --); fi
    "${run_as[@]}" "$pg_bin/initdb" -D "$dir/pg" -U zegolog -A trust --no-locale -E UTF8 >/dev/null
    "${run_as[@]}" "$pg_bin/pg_ctl" -D "$dir/pg" -o "-p $port -k $dir -c fsync=on" -l "$dir/pg.log" start >/dev/null
    PG_DATA=$dir/pg
    DATABASE_URL="postgres://zegolog@127.0.0.1:$port/postgres"
}

stop_private_pg() {
    [ -n "${pg_bin:-}" ] && [ -n "${PG_DATA:-}" ] && "$pg_bin/pg_ctl" -D "$PG_DATA" -m fast stop >/dev/null 2>&1
    return 0
}
