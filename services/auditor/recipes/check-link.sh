#!/usr/bin/env bash
# check-link.sh BROKER TOPIC PARTITION OFFSET
#
# Checks one link of the audit chain with standard tools only: the
# SHA-256 of the record at OFFSET must be the prevhash of the next record
# of the same partition (kcat skips transaction markers, so "next" is the
# next record a read_committed consumer sees). Prints both and exits 1 on
# a mismatch. Needs kcat, jq and sha256sum (Debian: apt-get install kcat jq).
#
# The cluster authenticates every client: point KCAT_CONFIG at a kcat
# configuration with your credentials (kcat reads it by itself). For the
# local cluster, scripts/kafka up writes one for the auditor, which uses
# the mutual-TLS listener (the broker port + 200):
#   KCAT_CONFIG=.run/kafka/kcat/assent-auditor.conf check-link.sh 127.0.0.1:19292 assent.events.v1 0 41
set -euo pipefail
if [[ $# -ne 4 ]]; then
  echo "usage: $0 BROKER TOPIC PARTITION OFFSET" >&2
  exit 64
fi
broker=$1 topic=$2 partition=$3 offset=$4
read_at() { # the exact value bytes of the first record at or after offset $1
  kcat -C -b "$broker" -t "$topic" -p "$partition" -o "$1" -c 1 -e -q \
    -X isolation.level=read_committed -f '%s'
}
offset_after() { # the offset of the first record after offset $1
  kcat -C -b "$broker" -t "$topic" -p "$partition" -o "$(($1 + 1))" -c 1 -e -q \
    -X isolation.level=read_committed -f '%o'
}
hash="sha256:$(read_at "$offset" | sha256sum | cut -d' ' -f1)"
next=$(offset_after "$offset")
link=$(read_at "$next" | jq -r .prevhash)
echo "record $partition@$offset hashes to $hash"
echo "record $partition@$next links to   $link"
if [[ "$hash" != "$link" ]]; then
  echo "BROKEN LINK between offsets $offset and $next" >&2
  exit 1
fi
echo "link OK"
