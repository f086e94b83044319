#!/usr/bin/env bash
# keel against django-oauth-toolkit (DOT), installed from PyPI into a throwaway virtualenv.
#
# Run from the repository root:  interop/django-oauth-toolkit/run.sh
# Environment: KEEL (a keel binary; default: cargo build --quiet, target/debug/keel),
#              KEEP_TMP=1 (keep the temporary directory and print where it is),
#              KEEL_ARGS (extra arguments for `keel run`, e.g. "--req RST-1"),
#              KEEL_OUT_DIR (copy report.json, junit.xml and the server log there).
#
# What it does:
#  1. mktemp -d; python3 -m venv; pip installs Django 4.2 LTS and DOT 2.4.0 (pinned) and
#     downloads the DOT 3.4.1 and 2.4.0 wheels (the migrate/rollback hooks install offline from them).
#  2. Writes a minimal Django project: SQLite, oauth2_provider at /o/ (OIDC on, for discovery and
#     a JWKS), /keel/health -> {"boot_id": <uuid4 made at process start>,
#     "schema_version": <latest applied oauth2_provider migration>, "dot_version": ...}.
#  3. migrate, a test user and three confidential applications (keel-cc and keel-cc2:
#     client_credentials; keel-pw: password, named in [user_tokens] as the client of user tokens),
#     server on 127.0.0.1:<free port>, PID in $TMP/server.pid.
#  4. The upgrade of the same data: tokens issued on DOT 2.4.0 (curl), then the migrate hook
#     (stop, pip install DOT 3.4.1, manage.py migrate, start), then the tokens are checked again.
#  5. keel runs against DOT 3.4.1 with restart / kill / migrate / rollback hooks (all written into
#     $TMP/hooks); the rollback hook reverses DOT's migrations with `manage.py migrate
#     oauth2_provider 0010_application_allowed_origins` and reinstalls DOT 2.4.0, so each of keel's
#     MIG scenarios really goes 3.4.1 -> 2.4.0, issues tokens on 2.4.0, and upgrades again.
#  6. Stops the server by PID (trap, also on failure) and exits with keel's exit code.
#
# Fast hashing (why and how): DOT hashes client secrets (hash_client_secret=True by default) with
# Django's default password hasher, PBKDF2-SHA256 with 600,000 iterations in Django 4.2, and the
# password grant checks the user's password with the same hasher: ~0.3 s of CPU per token request,
# which would make keel's 2,000-issuance scenario alone take ~10 minutes on two cores. The test
# project sets PASSWORD_HASHERS to a PBKDF2-SHA256 subclass with 1,000 iterations
# (keelproj.hashers.FastPBKDF2PasswordHasher). Client secrets stay hashed (DOT's default code
# path, in both releases), only cheaper. Never do this in production.
set -euo pipefail

log() { printf '[dot] %s\n' "$*"; }
die() { printf '[dot] error: %s\n' "$*" >&2; exit 2; }

[ -f interop/CONTRACT.md ] || die "run me from the repository root (interop/django-oauth-toolkit/run.sh)"
HERE=interop/django-oauth-toolkit
START=$(date +%s)

DOT_OLD=2.4.0
DOT_NEW=3.4.1
# Django 4.2 LTS: supported by both DOT releases (2.4.0: Django 3.2-5.0; 3.4.1: 4.2-6.0).
PINS=(Django==4.2.30 oauthlib==3.3.1 jwcrypto==1.5.6 waitress==3.0.2)
# The server: waitress (PyPI), one process, so that the PID is the whole server and SIGKILL is a
# real hard kill; its accept backlog (1024) keeps keel's concurrent requests queued rather than
# dropped (runserver's backlog of 10 dropped connections: keel saw 10 s timeouts). One worker
# thread by default: with SQLite, Django 4.2 opens deferred transactions, and a second thread
# writing at the same moment gets "database is locked" at once (SQLITE_BUSY on the lock upgrade,
# no busy wait), so 4 threads answered 500 to one of keel's 20 concurrent refreshes (RFR-4). That
# is the SQLite test database, not DOT (production DOT runs on PostgreSQL/MySQL, where
# select_for_update serializes the rotation); DOT_THREADS=4 shows it.
DOT_THREADS=${DOT_THREADS:-1}
DOT_REUSE_PROTECTION=${DOT_REUSE_PROTECTION:-False}
# The last migration of DOT 2.4.0: the rollback hook reverses 3.4.1's migrations down to it.
OLD_SCHEMA=0010_application_allowed_origins

TMP=$(mktemp -d "${TMPDIR:-/tmp}/keel-dot.XXXXXX")
VENV="$TMP/venv"
PROJ="$TMP/proj"
HOOKS="$TMP/hooks"
KEEL_RC=2

stop_server() {
    local pid
    [ -f "$TMP/server.pid" ] || return 0
    pid=$(cat "$TMP/server.pid")
    if kill -0 "$pid" 2>/dev/null; then
        log "stopping the server (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$TMP/server.pid"
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_server
    if [ -n "${KEEP_TMP:-}" ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    log "took $(( $(date +%s) - START ))s"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. install -------------------------------------------------------------------------------
log "temporary directory $TMP"
log "virtualenv with Django 4.2 LTS and django-oauth-toolkit $DOT_OLD from PyPI"
python3 -m venv "$VENV"
PIP=("$VENV/bin/pip" --disable-pip-version-check --quiet)
"${PIP[@]}" install "django-oauth-toolkit==$DOT_OLD" "${PINS[@]}"
log "downloading the django-oauth-toolkit $DOT_NEW and $DOT_OLD wheels for the migrate/rollback hooks"
for v in "$DOT_NEW" "$DOT_OLD"; do
    "${PIP[@]}" download --no-deps --only-binary=:all: -d "$TMP/wheels" "django-oauth-toolkit==$v"
done

# --- 2. the Django project ----------------------------------------------------------------------
mkdir -p "$PROJ/keelproj" "$HOOKS"
PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
log "port $PORT"
"$VENV/bin/python" - "$TMP" <<'EOF'
# Secrets of the test project: Django's SECRET_KEY, the OIDC signing key, the client secrets and
# the test user's password, each in a file of its own under $TMP/secrets (0600).
import os, secrets, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
d = os.path.join(sys.argv[1], "secrets"); os.makedirs(d, mode=0o700)
def put(name, value):
    fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, value.encode()); os.close(fd)
put("django_secret_key", secrets.token_urlsafe(50))
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
put("oidc_rsa_key.pem", key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode())
for n in ("cc_secret", "cc2_secret", "pw_secret", "user_password"):
    put(n, secrets.token_urlsafe(32))
EOF

cat >"$PROJ/manage.py" <<'EOF'
#!/usr/bin/env python
import os, sys
if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "keelproj.settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
EOF
: >"$PROJ/keelproj/__init__.py"
cat >"$PROJ/keelproj/settings.py" <<'EOF'
import os

BASE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # $TMP
SECRETS = os.path.join(BASE, "secrets")


def secret(name):
    with open(os.path.join(SECRETS, name)) as f:
        return f.read()


SECRET_KEY = secret("django_secret_key")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "oauth2_provider",
]
MIDDLEWARE = []
ROOT_URLCONF = "keelproj.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(BASE, "db.sqlite3"),
        # Wait for a lock instead of failing at once under concurrent requests.
        "OPTIONS": {"timeout": 30},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
TIME_ZONE = "UTC"
# Fast hashing for the test project only (see run.sh): client secrets and the user's password.
PASSWORD_HASHERS = ["keelproj.hashers.FastPBKDF2PasswordHasher"]
LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}},
}
OAUTH2_PROVIDER = {
    # DOT's defaults otherwise: ROTATE_REFRESH_TOKEN=True, REFRESH_TOKEN_GRACE_PERIOD_SECONDS=0,
    # ACCESS_TOKEN_EXPIRE_SECONDS=36000, opaque random access and refresh tokens.
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": secret("oidc_rsa_key.pem"),
    "SCOPES": {"read": "Read", "write": "Write", "openid": "OpenID Connect"},
    "DEFAULT_SCOPES": ["read"],
    # DOT 3.x: revoke the whole token family when a rotated-out refresh token comes back
    # (RFC 9700 §4.14.2). Off by default in DOT and here; DOT_REUSE_PROTECTION=True turns it on.
    "REFRESH_TOKEN_REUSE_PROTECTION": os.environ.get("DOT_REUSE_PROTECTION", "False") == "True",
}
EOF
cat >"$PROJ/keelproj/hashers.py" <<'EOF'
from django.contrib.auth.hashers import PBKDF2PasswordHasher


class FastPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """PBKDF2-SHA256 with 1,000 iterations: test project only (see run.sh)."""

    iterations = 1000
EOF
cat >"$PROJ/keelproj/views.py" <<'EOF'
import uuid

import oauth2_provider
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.http import JsonResponse

BOOT_ID = str(uuid.uuid4())  # one per process start


def health(request):
    names = MigrationRecorder(connection).migration_qs.filter(app="oauth2_provider").values_list("name", flat=True)
    return JsonResponse({
        "boot_id": BOOT_ID,
        "schema_version": max(names, default=None),
        "dot_version": oauth2_provider.__version__,
    })
EOF
cat >"$PROJ/keelproj/urls.py" <<'EOF'
from django.urls import include, path

from oauth2_provider import urls as dot_urls

from . import views

urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("keel/health", views.health),
]
# DOT 3.x serves RFC 8414 metadata; for an issuer under /o/ its docs say to mount the metadata
# routes at the server root as well (/.well-known/oauth-authorization-server/o). 2.4.0 has none.
if hasattr(dot_urls, "metadata_urlpatterns"):
    urlpatterns.append(path("", include((dot_urls.metadata_urlpatterns, "oauth2_provider_root"))))
EOF
cat >"$PROJ/keelproj/wsgi.py" <<'EOF'
import os
from django.core.wsgi import get_wsgi_application
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "keelproj.settings")
application = get_wsgi_application()
EOF

# --- hooks (sh, run by keel with `sh -c`) --------------------------------------------------------
cat >"$HOOKS/lib.sh" <<EOF
# Shared by the hooks. The server is waitress (one process, \$THREADS worker threads, see run.sh);
# its PID is in $TMP/server.pid.
TMP="$TMP"
PY="$VENV/bin/python"
PIP="$VENV/bin/pip"
PORT="$PORT"
THREADS="$DOT_THREADS"
export DOT_REUSE_PROTECTION="$DOT_REUSE_PROTECTION"
EOF
cat >>"$HOOKS/lib.sh" <<'EOF'
log() { printf '[dot hook] %s\n' "$*" >&2; }
start_server() {
    cd "$TMP/proj"
    # stdout/stderr to the log file: keel reads the hook's output until EOF.
    "$TMP/venv/bin/waitress-serve" --listen="127.0.0.1:$PORT" --threads="$THREADS" --ident=keel-dot \
        keelproj.wsgi:application </dev/null >>"$TMP/server.log" 2>&1 &
    echo $! >"$TMP/server.pid"
    log "server started, pid $!"
    i=0
    until curl -fsS -o /dev/null "http://127.0.0.1:$PORT/keel/health" 2>/dev/null; do
        i=$((i + 1))
        if [ "$i" -gt 300 ] || ! kill -0 "$(cat "$TMP/server.pid")" 2>/dev/null; then
            log "server did not come up; tail of $TMP/server.log:"; tail -n 30 "$TMP/server.log" >&2; return 1
        fi
        sleep 0.1
    done
}
# stop_server [SIGNAL]: signal the PID in server.pid (TERM by default) and wait until it is gone.
stop_server() {
    sig=${1:-TERM}
    [ -f "$TMP/server.pid" ] || { log "no server.pid"; return 0; }
    pid=$(cat "$TMP/server.pid")
    kill -s "$sig" "$pid" 2>/dev/null || { log "pid $pid was not running"; rm -f "$TMP/server.pid"; return 0; }
    i=0
    while kill -0 "$pid" 2>/dev/null; do
        i=$((i + 1))
        if [ "$i" -gt 100 ]; then log "pid $pid still alive after SIG$sig, SIGKILL"; kill -s KILL "$pid" 2>/dev/null || true; fi
        sleep 0.1
    done
    log "server pid $pid stopped (SIG$sig)"
    rm -f "$TMP/server.pid"
}
dot_version() { "$PY" -c 'import oauth2_provider; print(oauth2_provider.__version__)'; }
EOF
cat >"$HOOKS/start.sh" <<'EOF'
. "$(dirname "$0")/lib.sh"
start_server
EOF
cat >"$HOOKS/restart.sh" <<'EOF'
. "$(dirname "$0")/lib.sh"
stop_server TERM && start_server
EOF
cat >"$HOOKS/kill.sh" <<'EOF'
. "$(dirname "$0")/lib.sh"
stop_server KILL && start_server
EOF
cat >>"$HOOKS/migrate.sh" <<EOF
. "\$(dirname "\$0")/lib.sh"
NEW="$DOT_NEW"
EOF
cat >>"$HOOKS/migrate.sh" <<'EOF'
# Upgrade: stop, pip install the newer DOT (offline, from the downloaded wheel), migrate, start.
set -e
stop_server TERM
log "django-oauth-toolkit $(dot_version) -> $NEW"
"$PIP" install --disable-pip-version-check --quiet --no-index --no-deps --find-links "$TMP/wheels" "django-oauth-toolkit==$NEW" >&2
cd "$TMP/proj" && "$PY" manage.py migrate --noinput >&2
start_server
EOF
cat >>"$HOOKS/rollback.sh" <<EOF
. "\$(dirname "\$0")/lib.sh"
OLD="$DOT_OLD"
OLD_SCHEMA="$OLD_SCHEMA"
EOF
cat >>"$HOOKS/rollback.sh" <<'EOF'
# Rollback: stop, reverse the newer DOT's migrations with its own code (Django runs the reverse
# operations; DOT's data migrations reverse as no-ops), pip install the older DOT, start.
set -e
stop_server TERM
cur=$(dot_version)
if [ "$cur" = "$OLD" ]; then log "already on django-oauth-toolkit $OLD: nothing to roll back"; start_server; exit 1; fi
log "django-oauth-toolkit $cur -> $OLD (schema back to $OLD_SCHEMA)"
cd "$TMP/proj" && "$PY" manage.py migrate --noinput oauth2_provider "$OLD_SCHEMA" >&2
"$PIP" install --disable-pip-version-check --quiet --no-index --no-deps --find-links "$TMP/wheels" "django-oauth-toolkit==$OLD" >&2
start_server
EOF

# --- 3. schema, test user, applications, server -------------------------------------------------
log "manage.py migrate (django-oauth-toolkit $DOT_OLD)"
(cd "$PROJ" && "$VENV/bin/python" manage.py migrate --noinput >"$TMP/migrate-initial.log")
log "test user alice, confidential applications keel-cc, keel-cc2 (client_credentials) and keel-pw (password)"
(cd "$PROJ" && "$VENV/bin/python" manage.py shell) <<'EOF'
from django.contrib.auth import get_user_model
from oauth2_provider.models import get_application_model
from keelproj.settings import secret
Application = get_application_model()
get_user_model().objects.create_user("alice", password=secret("user_password"))
for client_id, grant, name in [
    ("keel-cc", Application.GRANT_CLIENT_CREDENTIALS, "cc_secret"),
    ("keel-cc2", Application.GRANT_CLIENT_CREDENTIALS, "cc2_secret"),
    ("keel-pw", Application.GRANT_PASSWORD, "pw_secret"),
]:
    # hash_client_secret stays True (DOT's default): the secret is stored hashed with the fast
    # PBKDF2 hasher of settings.PASSWORD_HASHERS.
    Application.objects.create(name=client_id, client_id=client_id, client_secret=secret(name),
                               client_type=Application.CLIENT_CONFIDENTIAL,
                               authorization_grant_type=grant, redirect_uris="")
EOF
log "starting the server on 127.0.0.1:$PORT"
sh "$HOOKS/start.sh"
health() { curl -fsS "$BASE/keel/health"; }
log "health: $(health)"

# --- 4. the upgrade of the same data: tokens on 2.4.0, migrate hook, tokens on 3.4.1 -------------
CC_SECRET=$(cat "$TMP/secrets/cc_secret")
PW_SECRET=$(cat "$TMP/secrets/pw_secret")
USER_PASSWORD=$(cat "$TMP/secrets/user_password")
json_get() { "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
tok_cc=$(curl -fsS -u "keel-cc:$CC_SECRET" -d grant_type=client_credentials -d scope=read "$BASE/o/token/")
tok_pw=$(curl -fsS -u "keel-pw:$PW_SECRET" -d grant_type=password -d username=alice \
    --data-urlencode "password=$USER_PASSWORD" -d scope=read "$BASE/o/token/")
at_cc=$(printf '%s' "$tok_cc" | json_get access_token)
rt_pw=$(printf '%s' "$tok_pw" | json_get refresh_token)
[ -n "$at_cc" ] && [ -n "$rt_pw" ] || die "token requests on DOT $DOT_OLD failed: $tok_cc / $tok_pw"
log "issued on $DOT_OLD: a client-credentials access token, a password-grant access+refresh token"
intro_before=$(curl -fsS -u "keel-cc:$CC_SECRET" --data-urlencode "token=$at_cc" "$BASE/o/introspect/")
log "upgrade: migrate hook ($DOT_OLD -> $DOT_NEW)"
sh "$HOOKS/migrate.sh" 2>&1 | sed 's/^/    /'
log "health: $(health)"
intro_after=$(curl -fsS -u "keel-cc:$CC_SECRET" --data-urlencode "token=$at_cc" "$BASE/o/introspect/")
refreshed=$(curl -sS -u "keel-pw:$PW_SECRET" -d grant_type=refresh_token --data-urlencode "refresh_token=$rt_pw" "$BASE/o/token/")
log "introspection of the 2.4.0 access token before the upgrade: $intro_before"
log "                                         and after:          $intro_after"
if [ -n "$(printf '%s' "$refreshed" | json_get refresh_token)" ]; then
    log "the 2.4.0 refresh token refreshes on $DOT_NEW"
else
    log "WARNING: the 2.4.0 refresh token did not refresh on $DOT_NEW: $refreshed"
fi

# --- 5. keel --------------------------------------------------------------------------------------
if [ -z "${KEEL:-}" ]; then
    log "building keel (cargo build --quiet)"
    cargo build --quiet
    KEEL=target/debug/keel
fi
sed -e "s|@PORT@|$PORT|g" -e "s|@HOOKS@|$HOOKS|g" "$HERE/target.toml.in" >"$TMP/target.toml"
export KEEL_CLIENT_SECRET="$CC_SECRET"
KEEL_SECOND_CLIENT_SECRET=$(cat "$TMP/secrets/cc2_secret"); export KEEL_SECOND_CLIENT_SECRET
export KEEL_PW_CLIENT_SECRET="$PW_SECRET"
export KEEL_USER_PASSWORD="$USER_PASSWORD"
log "keel run --target $TMP/target.toml --expectations $HERE/expectations.toml ${KEEL_ARGS:-}"
set +e
# shellcheck disable=SC2086
"$KEEL" run --target "$TMP/target.toml" --expectations "$HERE/expectations.toml" \
    --junit "$TMP/junit.xml" --report-json "$TMP/report.json" ${KEEL_ARGS:-}
KEEL_RC=$?
set -e
if [ -n "${KEEL_OUT_DIR:-}" ]; then mkdir -p "$KEEL_OUT_DIR" && cp "$TMP/report.json" "$TMP/junit.xml" "$TMP/server.log" "$KEEL_OUT_DIR/" || true; fi
log "keel exited with $KEEL_RC"
exit "$KEEL_RC"
