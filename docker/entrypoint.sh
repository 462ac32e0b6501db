#!/bin/sh
# The container's entry point (also runs on a host: tests/test_entrypoint.py).
#   serve [ARGS]    migrate the database, then the web app on $DRIP_HOST:$DRIP_PORT
#   run [ARGS]      migrate the database, then the worker
#   healthcheck     exit 0 when the web app answers /healthz (or the worker its /metrics)
#   anything else   a drip command (`backup FILE`, `staff add EMAIL`, `status`, ...)
# Web and worker must sign links with one key, so both refuse to start without DRIP_SECRET_KEY.
set -eu

need_key() {
    if [ -z "${DRIP_SECRET_KEY:-}" ]; then
        echo "drip-entrypoint: error: DRIP_SECRET_KEY is not set (web and worker must share one key; keep it with your backups)" >&2
        exit 2
    fi
}

role="${1:-serve}"
if [ "$#" -gt 0 ]; then shift; fi

case "$role" in
    serve)
        need_key
        drip migrate
        exec drip serve --host "${DRIP_HOST:-0.0.0.0}" --port "${DRIP_PORT:-8000}" "$@"
        ;;
    run)
        need_key
        drip migrate
        exec drip run "$@"
        ;;
    healthcheck)
        if [ -n "${DRIP_WORKER_METRICS_PORT:-}" ]; then
            url="http://127.0.0.1:${DRIP_WORKER_METRICS_PORT}/metrics"
        else
            url="http://127.0.0.1:${DRIP_PORT:-8000}/healthz"
        fi
        exec python3 -c "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=3).status == 200 else 1)" "$url"
        ;;
    *)
        exec drip "$role" "$@"
        ;;
esac
