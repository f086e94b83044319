#!/usr/bin/env bash
# keel against oidc-provider (npm), in two variants:
#   memory      oidc-provider's default in-memory adapter
#   persistent  an append-only JSON journal adapter (json-journal-adapter.mjs), fsync'ed per write
# Run from the repository root: interop/oidc-provider/run.sh
# Environment: KEEL (a keel binary; else built with cargo), OIDC_VARIANTS (default
# "memory persistent"), OIDC_ACCESS_TOKEN_FORMAT=jwt (a probe: JWT access tokens, which
# oidc-provider does not store, so it cannot introspect or revoke them; compared with
# expectations-VARIANT-jwt.toml), KEEL_INTEROP_OUT (a directory to copy the reports, logs and target files
# into), KEEL_INTEROP_KEEP=1 (keep the temp directory).
set -euo pipefail

OIDC_VERSION=8.8.1 # 9.x warns "Unsupported runtime" on Node.js 20; 8.8.1 supports Node 18/20 LTS
HERE=interop/oidc-provider
VARIANTS=${OIDC_VARIANTS:-memory persistent}
AT_FORMAT=${OIDC_ACCESS_TOKEN_FORMAT:-opaque}
case "$AT_FORMAT" in
  opaque) SUFFIX= ;;
  jwt) SUFFIX=-jwt ;;
  *) echo "run.sh: OIDC_ACCESS_TOKEN_FORMAT must be opaque or jwt" >&2; exit 2 ;;
esac
T0=$(date +%s)
say() { printf '[oidc-provider %4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }

if [ ! -f "$HERE/run.sh" ]; then
  echo "run.sh: run from the repository root (interop/oidc-provider/run.sh)" >&2
  exit 2
fi
ROOT=$(pwd)
command -v node >/dev/null || { echo "run.sh: node is required" >&2; exit 2; }
command -v npm >/dev/null || { echo "run.sh: npm is required" >&2; exit 2; }

TMP=$(mktemp -d)
KEEL_PID=
cleanup() {
  rc=$?
  if [ -n "$KEEL_PID" ] && kill -0 "$KEEL_PID" 2>/dev/null; then
    say "stopping keel (pid $KEEL_PID)"
    kill -TERM "$KEEL_PID" 2>/dev/null || true
    wait "$KEEL_PID" 2>/dev/null || true
  fi
  for v in $VARIANTS; do
    if [ -f "$TMP/$v/pid" ]; then
      say "stopping the $v issuer (pid $(cat "$TMP/$v/pid"))"
      sh "$TMP/srv/ctl.sh" "$TMP/$v" stop || true
    fi
  done
  if [ -n "${KEEL_INTEROP_OUT:-}" ]; then
    mkdir -p "$KEEL_INTEROP_OUT"
    for v in $VARIANTS; do
      [ -d "$TMP/$v" ] || continue
      mkdir -p "$KEEL_INTEROP_OUT/$v"
      cp -f "$TMP/$v"/{report.json,junit.xml,keel.log,server.log,target.toml} "$KEEL_INTEROP_OUT/$v/" 2>/dev/null || true
    done
    say "reports copied to $KEEL_INTEROP_OUT"
  fi
  if [ "${KEEL_INTEROP_KEEP:-}" = 1 ]; then
    say "kept $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "node $(node --version), npm $(npm --version); temp directory $TMP"
say "installing oidc-provider@$OIDC_VERSION from npm"
mkdir -p "$TMP/srv"
printf '{"name":"keel-oidc-provider","private":true,"type":"module"}\n' >"$TMP/srv/package.json"
(cd "$TMP/srv" && npm install --no-audit --no-fund --loglevel=error "oidc-provider@$OIDC_VERSION")
cp "$HERE/server.mjs" "$HERE/json-journal-adapter.mjs" "$HERE/ctl.sh" "$TMP/srv/"
say "installed: $(cd "$TMP/srv" && node -p 'require("./node_modules/oidc-provider/package.json").version')"

# Client secrets for this run only; keel and the hooks read them from the environment.
KEEL_CLIENT_SECRET=$(node -p 'require("crypto").randomBytes(24).toString("base64url")')
KEEL_CLIENT2_SECRET=$(node -p 'require("crypto").randomBytes(24).toString("base64url")')
export KEEL_CLIENT_SECRET KEEL_CLIENT2_SECRET

if [ -z "${KEEL:-}" ]; then
  say "building keel (cargo build --quiet)"
  cargo build --quiet
  KEEL=$ROOT/target/debug/keel
fi
EXPECT_FLAG=yes
if ! "$KEEL" run --help 2>/dev/null | grep -q -- '--expectations'; then
  EXPECT_FLAG=
  say "WARNING: this keel has no --expectations; verdicts are reported but not compared"
fi

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

status=0
for v in $VARIANTS; do
  VARDIR=$TMP/$v
  mkdir -p "$VARDIR/data"
  cp "$TMP/srv/ctl.sh" "$VARDIR/ctl.sh"
  PORT=$(free_port)
  printf 'SRV_DIR=%s\nPORT=%s\nADAPTER=%s\nDATA_DIR=%s\nACCESS_TOKEN_FORMAT=%s\n' \
    "$TMP/srv" "$PORT" "$v" "$VARDIR/data" "$AT_FORMAT" >"$VARDIR/env"
  sed -e "s|@PORT@|$PORT|g" -e "s|@VARDIR@|$VARDIR|g" -e "s|@OIDC_VERSION@|$OIDC_VERSION|g" \
    -e "s|^access_token = \"opaque\"|access_token = \"$AT_FORMAT\"|" \
    "$HERE/target-$v.toml.in" >"$VARDIR/target.toml"
  say "starting the $v issuer on 127.0.0.1:$PORT ($AT_FORMAT access tokens)"
  sh "$VARDIR/ctl.sh" "$VARDIR" start
  say "  pid $(cat "$VARDIR/pid"), boot $(curl -fsS "http://127.0.0.1:$PORT/keel/health")"

  args=(run --target "$VARDIR/target.toml" --junit "$VARDIR/junit.xml" --report-json "$VARDIR/report.json")
  [ -n "$EXPECT_FLAG" ] && args+=(--expectations "$HERE/expectations-$v$SUFFIX.toml")
  say "running keel on the $v variant: keel ${args[*]}"
  t=$(date +%s)
  # In the background and waited for, so that an interrupt reaches the trap at once.
  "$KEEL" "${args[@]}" > >(tee "$VARDIR/keel.log") 2>&1 &
  KEEL_PID=$!
  set +e
  wait "$KEEL_PID"
  rc=$?
  set -e
  KEEL_PID=
  say "keel on the $v variant exited $rc after $(($(date +%s) - t))s"
  [ "$rc" -gt "$status" ] && status=$rc

  say "stopping the $v issuer (pid $(cat "$VARDIR/pid"))"
  sh "$VARDIR/ctl.sh" "$VARDIR" stop
done

say "done in $(($(date +%s) - T0))s; exit $status"
exit "$status"
