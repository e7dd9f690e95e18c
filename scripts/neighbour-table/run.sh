#!/usr/bin/env bash
# Shows how the kernel's neighbour table, shared by every network namespace, loses entries
# from reads while it grows (docs/testing.md). Namespace A holds three permanent IPv6
# neighbours; a reader in A dumps and looks them up in a loop, first while nothing else
# happens (control), then while namespace B adds N entries. The table only grows when its
# entries outnumber its buckets and never shrinks: on a machine where it is already large,
# pick N above its bucket count (`ip -s ntable show name ndisc_cache`, hash_mask + 1).
# Root; it makes two namespaces of its own and removes them. Usage: run.sh [N] [seconds]
set -euo pipefail
N=${1:-65536}
SECONDS_EACH=${2:-30}
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
A="nbrace-a-$$"
B="nbrace-b-$$"
cleanup() { ip netns del "$A" 2>/dev/null || true; ip netns del "$B" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
gcc -O2 -o "$work/dumper" "$here/dumper.c"
for ns in "$A" "$B"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$ns" link add v0 type veth peer name v1
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0
  ip -n "$ns" link set v0 up
done
for i in 1 2 3; do
  ip -n "$A" neigh add "fd00:a::$i" lladdr "02:00:00:00:00:0$i" dev v0 nud permanent
done
stats() { ip -s ntable show name ndisc_cache | grep -oE 'hash_mask [0-9a-f]+|hash_grows [0-9]+' | tr '\n' ' '; echo; }
read_a() { ip netns exec "$A" "$work/dumper" 6 3 "$1" v0 fd00:a::1 fd00:a::2 fd00:a::3; }
echo "table before: $(stats)"
echo "control, nothing grows: $(read_a "$SECONDS_EACH")"
read_a $((SECONDS_EACH * 3)) > "$work/growing" &
reader=$!
for ((i = 0; i < N; i++)); do
  printf 'neigh add fd00:b::%x:%x lladdr 02:00:00:%02x:%02x:%02x dev v0 nud permanent\n' \
    $((i >> 16)) $((i & 0xffff)) $(((i >> 16) & 255)) $(((i >> 8) & 255)) $((i & 255))
done | ip -n "$B" -batch -
wait "$reader"
echo "while B adds $N entries: $(cat "$work/growing")"
echo "table after: $(stats)"
