#!/usr/bin/env bash
# Counts the CPU instructions PostgreSQL spends on one execution of zegolog's batch write
# statement, with callgrind: unlike times on a shared machine, the count is the same run after
# run (to about 0.1%), so a lever worth a few percent shows.
#
#   bench/write-batch-instructions.sh [ZEGOLOG_BINARY] [BATCH_SIZES]
#
# (defaults: target/release/zegolog, "1 35 100"). For each batch size it prints the
# instructions of one execution of the statement as `zegolog bench` runs it through pgbench
# (`--print-script write-batch`: the store's own text, with generated, signed, unique logouts),
# minus those of generating the same arrays alone, and that divided by the batch size.
#
# How: a throwaway cluster is created and migrated by that binary; each count is a
# single-user `postgres --single` backend under callgrind running PREPARE and then 8, and then
# 28, executions: the difference over 20 is one steady execution (generic plan, warm caches),
# without start-up, planning or the first executions' custom plans. Needs valgrind
# (`apt-get install valgrind`) and the PostgreSQL server binaries; as root it runs PostgreSQL as
# the `postgres` user. Takes about a minute per batch size. synchronous_commit is off: the
# count is the statement's work, not the wait for the disk.
set -euo pipefail

zegolog=${1:-target/release/zegolog}
sizes=${2:-1 35 100}
zegolog=$(realpath "$zegolog")
bindir=$(pg_config --bindir 2>/dev/null || true)
if [ ! -x "$bindir/initdb" ]; then
    bindir=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
fi
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install valgrind" >&2; exit 1; }

work=$(mktemp -d /tmp/zegolog-instructions.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        chown -R postgres "$work"
        su postgres -s /bin/bash -c "$*"
    else
        bash -c "$*"
    fi
}

port=$((20000 + RANDOM % 20000))
as_pg "'$bindir/initdb' -D '$work/data' -A trust -U postgres >/dev/null"
cat >> "$work/data/postgresql.conf" <<EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
synchronous_commit = off
EOF
as_pg "'$bindir/pg_ctl' -D '$work/data' -l '$work/log' -w start >/dev/null"
"$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -Atqc "CREATE DATABASE bench"
"$zegolog" migrate --database-url "postgres://postgres@127.0.0.1:$port/bench" >/dev/null 2>&1
as_pg "'$bindir/pg_ctl' -D '$work/data' -w stop >/dev/null"

"$zegolog" bench --print-script write-batch > "$work/statement.sql"

# The same arrays, generated and unnested, and nothing else: what the pgbench script adds to
# the statement the store sends (which binds the arrays as parameters).
python3 - "$work/statement.sql" "$work/arrays.sql" <<'EOF'
import sys
text = open(sys.argv[1]).read()
def part(start, end):
    a = text.index(start)
    return text[a:text.index(end, a)]
arrays = (part("WITH input AS (", "), triples AS (")
          + part("), logout_input AS (", "), login_input AS (")
          .replace("    WHERE NOT EXISTS (SELECT 1 FROM blocked AS b WHERE b.pos = t.pos)\n", ""))
open(sys.argv[2], "w").write(
    text.splitlines()[0] + "\n" + arrays
    + ")\nSELECT (SELECT count(*) FROM input), (SELECT count(*) FROM logout_input);\n")
EOF

# Instructions of PREPARE plus $2 executions of script $1 in a fresh copy of the cluster.
count() {
    local script=$1 executions=$2
    rm -rf "$work/run"
    cp -a "$work/data" "$work/run"
    {
        printf 'PREPARE w(bigint) AS %s;\n\n' "$(tail -n +2 "$script" | sed 's/:base/$1/g' | tr '\n' ' ')"
        for i in $(seq 1 "$executions"); do printf 'EXECUTE w(%d);\n\n' $((RANDOM * 100000 + i)); done
    } > "$work/in.sql"
    as_pg "valgrind --tool=callgrind --callgrind-out-file='$work/cg.out' '$bindir/postgres' --single -j -D '$work/run' bench < '$work/in.sql' > '$work/out.txt' 2> '$work/vg.txt'"
    if grep -q ERROR "$work/out.txt"; then
        grep ERROR "$work/out.txt" | head -3 >&2
        exit 1
    fi
    grep -E 'Collected' "$work/vg.txt" | awk '{print $4}'
}
per_execution() {
    local a b
    a=$(count "$1" 8)
    b=$(count "$1" 28)
    echo $(((b - a) / 20))
}

printf '%-6s %16s %16s %14s\n' batch "statement instr" "arrays instr" "per logout"
for n in $sizes; do
    sed "s/generate_series(1, 100)/generate_series(1, $n)/g" "$work/statement.sql" > "$work/s$n.sql"
    sed "s/generate_series(1, 100)/generate_series(1, $n)/g" "$work/arrays.sql" > "$work/a$n.sql"
    s=$(per_execution "$work/s$n.sql")
    a=$(per_execution "$work/a$n.sql")
    printf '%-6s %16d %16d %14d\n' "$n" "$((s - a))" "$a" "$(((s - a) / n))"
done
