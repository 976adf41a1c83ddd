#!/usr/bin/env bash
# The README's walk-through, step by step, against a running `txmsg serve` (admin key
# change-me), `txmsg fake smtp` and `txmsg fake twilio`. Run it from the folder `txmsg serve` was
# started in, the repository's (`txmsg keys` finds the database there, under ./txmsg-data, or
# where TXMSG_DATA_DIR says). The test suite runs it: tests/processes/test_walkthrough.py.
#
# It runs once on a database: it creates what a second run would create again (refused: 409).
set -euo pipefail
# A step that fails (curl -f hides the HTTP error's body) stops the script: say where.
trap 'echo "walkthrough.sh: stopped by a failed step, line $LINENO (exit status $?)" >&2' ERR

found=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer change-me" \
  "${API:-http://127.0.0.1:8025}/api/v1/channel-configs/mail" || true)
if [ "$found" = 000 ]; then
  echo "walkthrough.sh: no txmsg serve answers at ${API:-http://127.0.0.1:8025}: start it first" >&2
  exit 1
elif [ "$found" = 200 ]; then
  echo "walkthrough.sh: the channel configuration 'mail' exists: the walk-through already ran on" \
    "this database. To run it again, stop txmsg serve, move its data directory aside" \
    "(./txmsg-data, or TXMSG_DATA_DIR), start txmsg serve again, then this script." >&2
  exit 1
fi

# --- setup
API=${API:-http://127.0.0.1:8025}; ADMIN="Authorization: Bearer change-me"
SMTP_PORT=${SMTP_PORT:-2525}; TWILIO_URL=${TWILIO_URL:-http://127.0.0.1:8026}
field() {   # a value of a JSON answer: a string as is, null as nothing, anything else as JSON
  python3 -c "import json, sys; v = json.load(sys.stdin)$1
if v is not None: print(v if isinstance(v, str) else json.dumps(v))"; }
wait_status() {   # the event at href $1 reaches status $2 (within 10 s)
  for _ in $(seq 50); do
    STATUS=$(curl -s -H "$WEB" "$API$1" | field '["status"]')
    [ "$STATUS" = "$2" ] && echo "$1: $STATUS" && return 0
    sleep 0.2
  done
  echo "$1: $STATUS, expected $2" >&2; return 1
}

# --- 1. admin: an email channel configuration and an event configuration, published
curl -sf -H "$ADMIN" $API/api/v1/channel-configs -d '{"name": "mail", "channel": "email",
  "from_email": "shop@example.com", "from_name": "Example Shop", "reply_to": "help@example.com",
  "smtp": {"host": "127.0.0.1", "port": '"$SMTP_PORT"', "tls": "none"}, "message_export": false}'
curl -sf -H "$ADMIN" $API/api/v1/event-configs -d '{"eventId": "cartAbandonment",
  "label": "Cart abandonment", "channel": "email", "channel_config": "mail", "target": "event",
  "fields": [{"name": "firstName", "type": "string", "required": true}], "tags": ["shop"]}'
curl -sf -H "$ADMIN" -X POST $API/api/v1/event-configs/EVTcartAbandonment/publish  # the trigger endpoint is live

# keys for the marketer and for the website (the secret is printed once)
MKT="Authorization: Bearer $(txmsg keys create --role marketer --label Marketing | sed -n 's/^key: //p')"
WEB="Authorization: Bearer $(txmsg keys create --role trigger --label Website | sed -n 's/^key: //p')"

# --- 2. marketer: edit the draft, preview it, publish it
curl -sf -H "$MKT" -X PUT $API/api/v1/messages/EVTcartAbandonment/draft -d '{
  "subject": "{{ ctx.firstName }}, your cart is waiting",
  "html": "<p>Hi {{ ctx.firstName }}</p>", "text": "Hi {{ ctx.firstName }}"}'
curl -sf -H "$MKT" $API/api/v1/messages/EVTcartAbandonment/preview -d '{"ctx": {"firstName": "Ada"}}'
curl -sf -H "$MKT" -X POST $API/api/v1/messages/EVTcartAbandonment/publish

# --- 3. website: trigger, then poll the status until "processed" (the fake SMTP prints the mail)
HREF=$(curl -sf -H "$WEB" $API/rest/mc/EVTcartAbandonment -d '{"email": "ada@example.org",
  "ctx": {"firstName": "Ada"}}' | field '["href"]')    # 201 {"PKey": ..., "href": ..., "status": "pending"}
wait_status "$HREF" processed
curl -s -H "$WEB" $API/rest/mc/cartAbandonment -d '{}'   # 404: "did you mean 'EVTcartAbandonment'?"

# many at once: up to 1,000 events in one request, one answer item per input (207: one refused)
curl -s -H "$WEB" $API/rest/mc/EVTcartAbandonment/batch -d '{"events": [
  {"email": "ada@example.org", "ctx": {"firstName": "Ada"}},
  {"email": "grace@example.org", "ctx": {"firstName": "Grace"}},
  {"email": "not an address", "ctx": {"firstName": "Bob"}}]}'

# --- 4. SMS through the fake Twilio (its account and token are `txmsg fake twilio`'s defaults)
curl -sf -H "$ADMIN" $API/api/v1/channel-configs -d '{"name": "sms", "channel": "sms",
  "twilio": {"account_sid": "AC00000000000000000000000000000000", "auth_token": "fake-auth-token",
             "from_number": "+14155550100", "api_base_url": "'"$TWILIO_URL"'",
             "status_callback_base_url": "'"$API"'"}, "message_export": false}'
curl -sf -H "$ADMIN" $API/api/v1/event-configs -d '{"eventId": "codeSent", "channel": "sms",
  "channel_config": "sms", "fields": [{"name": "code", "type": "string", "required": true}]}'
curl -sf -H "$ADMIN" -X POST $API/api/v1/event-configs/EVTcodeSent/publish
curl -sf -H "$MKT" -X PUT $API/api/v1/messages/EVTcodeSent/draft -d '{"body": "Your code is {{ ctx.code }}"}'
curl -sf -H "$MKT" -X POST $API/api/v1/messages/EVTcodeSent/publish
HREF=$(curl -sf -H "$WEB" $API/rest/mc/EVTcodeSent -d '{"mobilePhone": "+1 (415) 555-2671",
  "ctx": {"code": "482913"}}' | field '["href"]')
wait_status "$HREF" processed
sleep 1   # the fake Twilio's receipts (sent, delivered) reach the delivery log
curl -sf -H "$ADMIN" $API/api/v1/events${HREF#/rest/mc}/delivery-log

# --- 5. profiles: imported from NDJSON (one JSON object a line, `profile_id` required)
curl -sf -H "$ADMIN" -H "Content-Type: application/x-ndjson" --data-binary @examples/profiles.ndjson \
  $API/api/v1/profiles:import      # {"created": 3, "updated": 0, "rejected": 0, "rejections": [], "opt_outs_kept": 0, "warnings": []}

# a profile-based event: ctx.customer is matched against profile ids
curl -sf -H "$ADMIN" $API/api/v1/event-configs -d '{"eventId": "welcome", "channel": "email",
  "channel_config": "mail", "target": "profile",
  "reconciliation": {"from": "ctx.customer", "to": "profile_id"},
  "fields": [{"name": "customer", "type": "string", "required": true}]}'
curl -sf -H "$ADMIN" -X POST $API/api/v1/event-configs/EVTwelcome/publish
ANSWER=$(curl -sf -H "$WEB" $API/rest/mc/EVTwelcome -d '{"ctx": {"customer": "c-42"}}')
echo "$ANSWER" | field '["reason"]'   # paused: "the event's message has no published version yet..."
HREF=$(echo "$ANSWER" | field '["href"]')
curl -sf -H "$MKT" -X PUT $API/api/v1/messages/EVTwelcome/draft -d '{
  "subject": "Welcome, {{ profile.first_name }}", "html": "<p>Hi {{ profile.first_name }}</p>",
  "text": "Hi {{ profile.first_name | default(\"there\") }}"}'
curl -sf -H "$MKT" -X POST $API/api/v1/messages/EVTwelcome/publish
wait_status "$HREF" processed  # sent to the profile's address once the message is published

# --- 6. reports (the last 30 days by default) and the process's health
curl -sf -H "$ADMIN" "$API/api/v1/reports/EVTcartAbandonment" | field '["total"]'
curl -sf -H "$ADMIN" "$API/api/v1/reports?tag=shop&format=csv&from=$(date -u +%F)"
curl -sf $API/ready                                                     # {"status": "ready", ...}
curl -sf -H "$ADMIN" $API/metrics | grep '^txmsg_sends_total'
