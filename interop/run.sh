#!/usr/bin/env bash
# `make interop`: the Label Studio round trip against a real Label Studio, opt-in (not part
# of `make test`: it installs Label Studio, ~1 GB, into its own venv and takes minutes).
#
# Label Studio runs on 127.0.0.1 on a free port with a temporary data dir and local files
# served from a temporary document root; roundtrip.py drives it through its HTTP API. The
# server is stopped on every exit (success, failure, Ctrl-C) by the trap below.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
ls_version=${LS_VERSION:-1.23.2}
venv=${INTEROP_VENV:-$repo/.interop/venv}
ambiscope=${AMBISCOPE:-$repo/.venv/bin/ambiscope}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/label-studio" ]; then
    echo "installing label-studio==$ls_version into $venv (a few minutes, once)"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet "label-studio==$ls_version"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ambiscope-interop.XXXXXX")
ls_pid=""
stop_label_studio() {
    status=$?
    if [ -n "$ls_pid" ] && kill -0 "$ls_pid" 2>/dev/null; then
        kill -TERM -- "-$ls_pid" 2>/dev/null || true
        for _ in $(seq 20); do kill -0 "$ls_pid" 2>/dev/null || break; sleep 0.5; done
        kill -KILL -- "-$ls_pid" 2>/dev/null || true
        echo "stopped Label Studio (pid $ls_pid)"
    fi
    if [ "$status" -eq 0 ]; then
        rm -rf "$work"
    else
        echo "kept $work for inspection (Label Studio log: $work/label-studio.log)"
    fi
    exit "$status"
}
trap stop_label_studio EXIT
trap 'exit 130' INT TERM

port=$("$venv/bin/python" -c \
    'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/root" "$work/data"
admin_email=admin@example.com
admin_password=interop-$RANDOM$RANDOM

echo "Label Studio $ls_version on http://127.0.0.1:$port, document root $work/root"
# setsid: its own process group, so the trap stops the server and every worker it forks
LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true \
LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT="$work/root" \
LABEL_STUDIO_BASE_DATA_DIR="$work/data" \
LABEL_STUDIO_USERNAME="$admin_email" \
LABEL_STUDIO_PASSWORD="$admin_password" \
    setsid "$venv/bin/label-studio" start --no-browser --internal-host 127.0.0.1 \
    --port "$port" --data-dir "$work/data" >"$work/label-studio.log" 2>&1 &
ls_pid=$!

"$venv/bin/python" "$here/roundtrip.py" \
    --url "http://127.0.0.1:$port" \
    --root "$work/root" \
    --work "$work" \
    --ambiscope "$ambiscope" \
    --admin "$admin_email" \
    --password "$admin_password" \
    --server-pid "$ls_pid"
