# Region entrypoint (run by busybox sh): adds GLOBAL_ADDR, the address of the
# region's member of the NATS cluster `global`, to the interface that holds
# REGION_ADDR, then runs /shortener with the arguments given. shortener
# derives the global member's address as the regional one's last octet plus
# one (127.0.N.1 and 127.0.N.2 in the dev cluster) and Docker gives a
# container only one address per network, hence this. A loop puts the
# address back whenever it is missing: after `docker network disconnect` and
# `connect` the interface comes back without it (the listeners, bound to the
# address, survive that and accept again once it is back).
B=/bin/busybox
set -eu
: "${REGION_ADDR:?REGION_ADDR is required}" "${GLOBAL_ADDR:?GLOBAL_ADDR is required}"

keep_global_addr() {
	set -- $($B ip -o -4 addr show | $B awk -v a="$REGION_ADDR" 'index($4, a "/") == 1 { split($4, p, "/"); print $2, p[2]; exit }')
	[ $# -eq 2 ] || return 0 # not attached right now (disconnected)
	$B ip -o -4 addr show dev "$1" | $B grep -q " $GLOBAL_ADDR/" && return 0
	$B ip addr add "$GLOBAL_ADDR/$2" dev "$1"
}

keep_global_addr
(while :; do $B sleep 1; keep_global_addr 2>/dev/null || true; done) &
exec /shortener "$@"
