#!/usr/bin/env bash
# A dedicated vhost for the example system and one least-privilege user per service, with the
# permission rules of docs/security.md filled in for the example's exchange and queues. Idempotent:
# run it again to reset passwords and permissions.
#
#   examples/broker-setup.sh [vhost]            create (vhost default: grabbit-example)
#   examples/broker-setup.sh --delete [vhost]   delete the users and the vhost (with its queues)
#   eval "$(examples/broker-setup.sh)"          create, then export the three services' URLs
#
# Env: EXAMPLE_VHOST (the vhost when no argument is given), EXAMPLE_USER_PREFIX (example: users
# example-bridge, example-processor, example-reporter), EXAMPLE_BRIDGE_PASSWORD,
# EXAMPLE_PROCESSOR_PASSWORD, EXAMPLE_REPORTER_PASSWORD (defaults below: change them anywhere but a
# laptop), REPORTER_QUEUE (example.reporter), EXAMPLE_AMQP_HOST (127.0.0.1:5672, for the printed URLs),
# RABBITMQCTL (rabbitmqctl). Progress goes to stderr; stdout is only the `export` lines.
set -euo pipefail

mode=create
if [[ "${1:-}" == "--delete" ]]; then mode=delete; shift; fi
vhost="${1:-${EXAMPLE_VHOST:-grabbit-example}}"
prefix="${EXAMPLE_USER_PREFIX:-example}"
queue="${REPORTER_QUEUE:-example.reporter}"
host="${EXAMPLE_AMQP_HOST:-127.0.0.1:5672}"
ctl="${RABBITMQCTL:-rabbitmqctl}"

for name in "$vhost" "$prefix" "$queue"; do
  # Plain names only: they go into URLs and regexes unencoded.
  if [[ ! "$name" =~ ^[A-Za-z0-9._-]+$ ]]; then
    echo "broker-setup: '$name' is not a plain name (letters, digits, '.', '_', '-')" >&2
    exit 1
  fi
done

declare -A password=(
  [bridge]="${EXAMPLE_BRIDGE_PASSWORD:-bridge-example-secret}"
  [processor]="${EXAMPLE_PROCESSOR_PASSWORD:-processor-example-secret}"
  [reporter]="${EXAMPLE_REPORTER_PASSWORD:-reporter-example-secret}"
)
services=(bridge processor reporter)

# Names as regexes: dots escaped.
esc() { printf '%s' "${1//./\\.}"; }
X="$(esc example.reports)"                       # the RequestReported exchange
S="$(esc example.v1.RequestProcessorService)"    # processRequest's request queue over RabbitMQ
Q="$(esc "$queue")"
# The Reporter's queue: REPORTER_QUEUE, or the demo's per-run queue REPORTER_QUEUE.run-<pid>-<time>;
# each with its retry queues (.retry.<ms>) and dead-letter queue (.dlq).
RQ="${Q}(\\.run-[0-9]+-[0-9a-z]+)?(\\.retry\\.[0-9]+|\\.dlq)?"

# configure / write / read, per service (docs/security.md, "The broker: a vhost and a user per role").
declare -A configure write read
# Bridge, only used with --amqp / PROCESSOR_AMQP=1: an RPC client. Publishes requests through the
# default exchange; replies come back on amq.rabbitmq.reply-to, which needs no permission.
configure[bridge]='^$'
write[bridge]='^amq\.default$'
read[bridge]='^$'
# Processor: event publisher on the exchange (declares it, publishes to it) and RPC server of
# RequestProcessorService (declares its queue and DLQ, consumes requests, replies through amq.default).
configure[processor]="^(${X}|${S}(\\.dlq)?)\$"
write[processor]="^(${X}|amq\\.default)\$"
read[processor]="^${S}\$"
# Reporter: event consumer. Declares the exchange and its queues, binds (write on the queue, read on
# the exchange), moves deliveries to retry queues and the DLQ through amq.default, consumes.
configure[reporter]="^(${X}|${RQ})\$"
write[reporter]="^(amq\\.default|${Q}(\\.run-[0-9]+-[0-9a-z]+)?)\$"
read[reporter]="^(${X}|${RQ})\$"

user() { printf '%s-%s' "$prefix" "$1"; }
quiet() { "$ctl" "$@" >/dev/null; }
user_exists() { "$ctl" list_users --quiet --no-table-headers | cut -f1 | grep -qxF -- "$1"; }
vhost_exists() { "$ctl" list_vhosts --quiet --no-table-headers | grep -qxF -- "$1"; }

if [[ "$mode" == delete ]]; then
  for s in "${services[@]}"; do
    u="$(user "$s")"
    if user_exists "$u"; then quiet delete_user "$u"; echo "broker-setup: deleted user $u" >&2; fi
  done
  if vhost_exists "$vhost"; then quiet delete_vhost "$vhost"; echo "broker-setup: deleted vhost $vhost" >&2; fi
  exit 0
fi

vhost_exists "$vhost" || quiet add_vhost "$vhost"
echo "broker-setup: vhost $vhost" >&2
for s in "${services[@]}"; do
  u="$(user "$s")"
  if user_exists "$u"; then
    quiet change_password "$u" "${password[$s]}"
  else
    quiet add_user "$u" "${password[$s]}"
  fi
  quiet set_user_tags "$u"   # no management or administrator tags
  quiet set_permissions -p "$vhost" "$u" "${configure[$s]}" "${write[$s]}" "${read[$s]}"
  echo "broker-setup: user $u: configure '${configure[$s]}' write '${write[$s]}' read '${read[$s]}'" >&2
done
for s in "${services[@]}"; do
  upper="$(printf '%s' "$s" | tr '[:lower:]' '[:upper:]')"
  echo "export ${upper}_AMQP_URL='amqp://$(user "$s"):${password[$s]}@${host}/${vhost}'"
done
