#!/usr/bin/env bash
# Runs a command with PostgreSQL (and, if asked, Mosquitto) reachable, on a
# machine where nothing may be running yet:
#
#   scripts/services.sh [--postgres VAR] [--mosquitto] -- COMMAND [ARGS...]
#
# --postgres VAR  When VAR (CLAIMSVC_DATABASE_URL or CLAIMSVC_TEST_DATABASE_URL)
#                 is set, it is used as it is. Otherwise, when a PostgreSQL on
#                 127.0.0.1:5432 lets user postgres in, that one is used, and
#                 says so: the tests' maintenance database is its postgres
#                 database (each test makes and drops its own), claimsvc's
#                 (CLAIMSVC_DATABASE_URL: make demo, make run) its own database
#                 claimsvc_dev, made if missing.
#                 Otherwise a private PostgreSQL is started: the server binaries
#                 of Debian (/usr/lib/postgresql/N/bin) or Homebrew, initdb into
#                 .cache/postgres (trust auth for 127.0.0.1 only, no Unix
#                 socket), a free port on 127.0.0.1; VAR names it for COMMAND,
#                 and it is stopped when COMMAND ends. Its data stays in
#                 .cache/postgres for the next run (a directory in /tmp,
#                 removed at the end, when the server's user cannot reach
#                 .cache).
# --mosquitto     When nothing answers on 127.0.0.1:1883 (where the tests look
#                 for a broker), a private Mosquitto listens there until
#                 COMMAND ends.
#
# CLAIMSVC_STATE_DIR moves .cache elsewhere (the tests use a fresh one);
# CLAIMSVC_PG_BINDIR names the directory of initdb, pg_ctl and postgres. Under
# CI=true a missing server binary is an error; elsewhere the command still runs
# and the tests that need the server skip with a message.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state=${CLAIMSVC_STATE_DIR:-$root/.cache}
pg_var="" want_mqtt=false
while (($#)); do
  case $1 in
  --postgres) pg_var=$2; shift 2 ;;
  --mosquitto) want_mqtt=true; shift ;;
  --) shift; break ;;
  *) echo "services.sh: unknown option $1 (see the comment at the top of scripts/services.sh)" >&2; exit 2 ;;
  esac
done
(($#)) || { echo "services.sh: no command given" >&2; exit 2; }

say() { printf 'services: %s\n' "$*" >&2; }
answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; } # host port: something accepts TCP there
missing_server() {                                   # what, how to get it
  if [[ ${CI:-} == true ]]; then say "$1 ($2)"; exit 1; fi
  say "$1: running without it ($2)"
}

# Servers are run as an unprivileged user when we are root: initdb refuses root.
run_as=()
if [[ $(id -u) -eq 0 ]]; then
  for u in postgres nobody; do
    if id "$u" >/dev/null 2>&1; then
      if command -v runuser >/dev/null; then run_as=(runuser -u "$u" --); else run_as=(su -s /bin/sh "$u" -c '"$0" "$@"'); fi
      pg_user=$u
      break
    fi
  done
fi
as_pg() { "${run_as[@]}" "$@"; }

# --- PostgreSQL --------------------------------------------------------------
default_url=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
pg_data="" pg_started=false pg_tmp=""

pg_bindir() { # prints the directory holding initdb, pg_ctl and postgres
  local d c dirs
  if [[ -n ${CLAIMSVC_PG_BINDIR:-} ]]; then # the caller's choice, and only it
    dirs=$CLAIMSVC_PG_BINDIR
  else
    dirs="$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")
      $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r)
      $(ls -d /opt/homebrew/opt/postgresql*/bin /usr/local/opt/postgresql*/bin /usr/pgsql-*/bin 2>/dev/null | sort -r)"
  fi
  for d in $dirs; do
    c=1
    for b in initdb pg_ctl postgres; do [[ -x $d/$b ]] || c=0; done
    ((c)) && { echo "$d"; return 0; }
  done
  return 1
}

default_pg_usable() {
  if command -v pg_isready >/dev/null; then
    pg_isready -q -h 127.0.0.1 -p 5432 -t 3 || return 1
  else
    answers 127.0.0.1 5432 || return 1
  fi
  if command -v psql >/dev/null && ! PGCONNECT_TIMEOUT=3 psql "$default_url" -Atqc 'select 1' >/dev/null 2>&1; then
    say "a PostgreSQL answers on 127.0.0.1:5432 but does not let user postgres in without a password: using a private one (or set $pg_var)"
    return 1
  fi
}

pg_port_of() { sed -n 4p "$1/postmaster.pid" 2>/dev/null; } # line 4 of postmaster.pid is the port

start_private_pg() {
  local bin dir v want_v port try log
  if ! bin=$(pg_bindir); then
    missing_server "no PostgreSQL answers on 127.0.0.1:5432 and its server binaries (initdb, pg_ctl, postgres) are not installed" \
      "get them with: sudo scripts/deps.sh (Debian), brew install postgresql@16 (macOS); or run the stack with docker compose up; or set $pg_var"
    return 0
  fi
  dir=$state/postgres
  mkdir -p "$state"
  if ((${#run_as[@]})); then
    mkdir -p "$dir"
    chown "$pg_user" "$dir"
    if ! as_pg test -w "$dir"; then # e.g. a clone under /root: the server's user cannot reach it
      dir=$(mktemp -d "${TMPDIR:-/tmp}/claimsvc-postgres.XXXXXX")
      pg_tmp=$dir
      chmod 755 "$dir"
      chown "$pg_user" "$dir"
      say "user $pg_user cannot reach $state: the private PostgreSQL lives in $dir for this run"
    fi
  fi
  mkdir -p "$dir"
  pg_data=$dir/data log=$dir/server.log

  want_v=$("$bin/postgres" --version | sed -E 's/[^0-9]*([0-9]+).*/\1/')
  if [[ -f $pg_data/PG_VERSION ]] && v=$(cat "$pg_data/PG_VERSION") && [[ $v != "$want_v" ]]; then
    say "$pg_data was made by PostgreSQL $v, the binaries in $bin are $want_v: remove $dir to start afresh (its claims are lost)"
    exit 1
  fi
  if [[ ! -f $pg_data/PG_VERSION ]]; then
    say "initdb: a private PostgreSQL $want_v in $pg_data"
    as_pg "$bin/initdb" -D "$pg_data" -U postgres -A trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    # Only TCP from 127.0.0.1, trusted: the server never listens anywhere else.
    printf '# written by scripts/services.sh\nhost all all 127.0.0.1/32 trust\n' | as_pg tee "$pg_data/pg_hba.conf" >/dev/null
  fi

  if as_pg "$bin/pg_ctl" -D "$pg_data" status >/dev/null 2>&1; then
    port=$(pg_port_of "$pg_data")
    if answers 127.0.0.1 "$port"; then
      say "reusing the private PostgreSQL already running from $pg_data on 127.0.0.1:$port (whoever started it stops it)"
      export "$pg_var=postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
      return 0
    fi
    say "the private PostgreSQL of $pg_data runs but does not answer on 127.0.0.1:$port (another network namespace?): stop it with $bin/pg_ctl -D $pg_data stop"
    exit 1
  fi

  for try in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 10000))
    answers 127.0.0.1 "$port" && continue
    if as_pg "$bin/pg_ctl" -D "$pg_data" -l "$log" -w -t 60 \
      -o "-c port=$port -c listen_addresses=127.0.0.1 -c unix_socket_directories=''" start >/dev/null 2>&1; then
      pg_started=true
      pg_bin=$bin
      export "$pg_var=postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
      say "private PostgreSQL $want_v on 127.0.0.1:$port ($pg_data); it stops when this command ends"
      return 0
    fi
    grep -q 'could not bind\|Address already in use' "$log" 2>/dev/null || break
  done
  say "the private PostgreSQL did not start; the end of $log:"
  tail -n 20 "$log" >&2 || true
  exit 1
}

# --- Mosquitto ---------------------------------------------------------------
mqtt_pid=""
start_private_mosquitto() {
  if answers 127.0.0.1 1883; then
    say "using the MQTT broker already on 127.0.0.1:1883"
    return 0
  fi
  local bin dir
  bin=$(command -v mosquitto || true)
  [[ -z $bin && -x /usr/sbin/mosquitto ]] && bin=/usr/sbin/mosquitto
  [[ -z $bin && -x /opt/homebrew/sbin/mosquitto ]] && bin=/opt/homebrew/sbin/mosquitto
  if [[ -z $bin ]]; then
    missing_server "nothing answers on 127.0.0.1:1883 and mosquitto is not installed" \
      "get it with: sudo scripts/deps.sh (Debian), brew install mosquitto (macOS)"
    return 0
  fi
  dir=$state/mosquitto
  mkdir -p "$dir"
  printf '# written by scripts/services.sh\nlistener 1883 127.0.0.1\nallow_anonymous true\npersistence false\nmax_connections -1\n' >"$dir/mosquitto.conf"
  "$bin" -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
  mqtt_pid=$!
  for _ in $(seq 1 40); do
    answers 127.0.0.1 1883 && { say "private Mosquitto on 127.0.0.1:1883 (pid $mqtt_pid); it stops when this command ends"; return 0; }
    kill -0 "$mqtt_pid" 2>/dev/null || break
    sleep 0.25
  done
  say "the private Mosquitto did not start:"
  cat "$dir/mosquitto.log" >&2 || true
  exit 1
}

cleanup() {
  local rc=$?
  set +e
  if [[ -n $mqtt_pid ]]; then
    kill "$mqtt_pid" 2>/dev/null
    wait "$mqtt_pid" 2>/dev/null
    say "stopped the private Mosquitto"
  fi
  local stopped=true
  if $pg_started; then
    if as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null 2>&1; then
      say "stopped the private PostgreSQL"
    else
      stopped=false
      say "could not stop the private PostgreSQL of $pg_data: $pg_bin/pg_ctl -D $pg_data stop"
    fi
  fi
  # this run's own data dir in /tmp, once its server is down
  if [[ -n $pg_tmp ]] && $stopped; then rm -rf "$pg_tmp"; fi
  return $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n $pg_var ]]; then
  if [[ -n ${!pg_var:-} ]]; then
    : # named by the caller
  elif default_pg_usable; then
    url=$default_url
    if [[ $pg_var == CLAIMSVC_DATABASE_URL ]] && command -v psql >/dev/null; then
      # claimsvc's tables in a database of their own, not in the server's postgres database
      if [[ -z $(psql "$default_url" -Atqc "select 1 from pg_database where datname = 'claimsvc_dev'") ]]; then
        psql "$default_url" -qc 'CREATE DATABASE claimsvc_dev' >/dev/null
      fi
      url=${default_url/\/postgres\?//claimsvc_dev?}
    fi
    db=${url#*5432/}
    say "using the PostgreSQL on 127.0.0.1:5432 (database ${db%%\?*}); set $pg_var to choose another"
    export "$pg_var=$url"
  else
    start_private_pg
  fi
fi
$want_mqtt && start_private_mosquitto

"$@"
