#!/bin/sh
# Start, stop, restart or hard-kill one oidc-provider instance.
#   sh ctl.sh VARDIR start|stop|restart|kill
# VARDIR/env sets SRV_DIR (where server.mjs and node_modules are), PORT, ADAPTER, DATA_DIR and
# ACCESS_TOKEN_FORMAT;
# the client secrets come from the environment (KEEL_CLIENT_SECRET, KEEL_CLIENT2_SECRET), which
# keel passes on to its hooks. The PID is kept in VARDIR/pid, the log in VARDIR/server.log.
set -eu
VARDIR=$1
ACTION=$2
. "$VARDIR/env"
PIDFILE=$VARDIR/pid

# A zombie (killed, not yet reaped by init) counts as gone.
alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  case "$(ps -o stat= -p "$1" 2>/dev/null)" in Z*|"") return 1 ;; esac
  return 0
}

wait_gone() {
  i=0
  while alive "$1"; do
    i=$((i + 1))
    if [ "$i" -eq 200 ]; then
      echo "ctl.sh: pid $1 still alive after 10s, sending SIGKILL" >&2
      kill -KILL "$1" 2>/dev/null || true
    elif [ "$i" -gt 400 ]; then
      echo "ctl.sh: pid $1 did not go away" >&2
      exit 1
    fi
    sleep 0.05
  done
}

stop() {
  sig=$1
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  if alive "$pid"; then
    kill "-$sig" "$pid"
    wait_gone "$pid"
    echo "$(date +%T) ctl.sh: pid $pid stopped with SIG$sig" >>"$VARDIR/server.log"
  fi
  rm -f "$PIDFILE"
}

start() {
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  if alive "$pid"; then
    echo "ctl.sh: already running as pid $pid" >&2
    exit 1
  fi
  cd "$SRV_DIR"
  # No inherited stdout/stderr: keel waits for the hook's output to close.
  PORT=$PORT ADAPTER=$ADAPTER DATA_DIR=$DATA_DIR ACCESS_TOKEN_FORMAT=${ACCESS_TOKEN_FORMAT:-opaque} \
    node server.mjs </dev/null >>"$VARDIR/server.log" 2>&1 &
  echo $! >"$PIDFILE"
  pid=$!
  i=0
  until curl -fsS -o /dev/null "http://127.0.0.1:$PORT/keel/health" 2>/dev/null; do
    if ! alive "$pid"; then
      echo "ctl.sh: server exited during start; log tail:" >&2
      tail -n 20 "$VARDIR/server.log" >&2
      exit 1
    fi
    i=$((i + 1))
    if [ "$i" -gt 600 ]; then
      echo "ctl.sh: server not healthy within 30s" >&2
      exit 1
    fi
    sleep 0.05
  done
}

case "$ACTION" in
  start) start ;;
  stop) stop TERM ;;
  restart) stop TERM; start ;;
  kill) stop KILL; start ;;
  *) echo "usage: ctl.sh VARDIR start|stop|restart|kill" >&2; exit 2 ;;
esac
