#!/usr/bin/env bash
# Makes sure the servers the tests use answer on this machine: PostgreSQL (127.0.0.1:5432),
# Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672), and that the SMTP sink (aiosmtpd) is
# installed. Starts (and if need be installs) the
# ones that do not. Exits non-zero, naming the server, when one cannot be had: the tests that
# need it would fail anyway, with a less clear message.
set -uo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # port seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    listening "$1" && return 0
    sleep 0.1
  done
  return 1
}

install() {
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing $*"
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  fi
}

failed=0

if ! listening 5432; then
  command -v pg_ctlcluster >/dev/null 2>&1 || install postgresql
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  wait_for 5432 30 || { echo "PostgreSQL does not answer on 127.0.0.1:5432"; failed=1; }
fi

if ! command -v redis-server >/dev/null 2>&1; then
  install redis-server
fi
if ! listening 6379; then
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  wait_for 6379 15 || { echo "Redis does not answer on 127.0.0.1:6379"; failed=1; }
fi

if ! listening 5672; then
  command -v rabbitmq-server >/dev/null 2>&1 || install rabbitmq-server
  echo "starting RabbitMQ"
  rabbitmq-server -detached || true
  wait_for 5672 90 || { echo "RabbitMQ does not answer on 127.0.0.1:5672"; failed=1; }
fi

# The SMTP sink of the notification tests.
if ! python3 -c "import aiosmtpd" >/dev/null 2>&1; then
  echo "installing aiosmtpd"
  python3 -m pip install --quiet aiosmtpd || { echo "cannot install aiosmtpd (pip)"; failed=1; }
fi

if [ "$failed" = 0 ]; then
  echo "PostgreSQL, Redis and RabbitMQ answer"
fi
exit "$failed"
