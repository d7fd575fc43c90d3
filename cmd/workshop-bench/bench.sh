#!/bin/sh
# bench.sh builds the server and the bench, starts servers of its own on
# free loopback ports (temporary data directories), runs workshop-bench
# against them and stops everything it started, whatever happens.
#
#   sh cmd/workshop-bench/bench.sh [-redis] [-pprof] -- [workshop-bench flags]
#
#   (default)  one instance on the embedded store
#   -redis     redis-server (append-only, appendfsync always) and two
#              instances sharing it
#   -pprof     serve /debug/pprof/ on every instance (their URLs are printed)
#
# The bench gets -url and -server-pids; pass any other flag after --.
set -eu

mode=embedded
pprof=false
while [ $# -gt 0 ]; do
	case "$1" in
	-redis) mode=redis ;;
	-pprof) pprof=true ;;
	--) shift; break ;;
	*) echo "bench.sh: unknown option $1 (bench flags go after --)" >&2; exit 2 ;;
	esac
	shift
done

GO=${GO:-go}
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/workshop-bench.XXXXXX")
pids=""

cleanup() {
	status=$?
	for pid in $pids; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in $pids; do
		# bounded: the servers' shutdown grace is 15 s
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
		kill -9 "$pid" 2>/dev/null || true
	done
	if [ $status -ne 0 ]; then
		for log in "$tmp"/*.log; do
			[ -f "$log" ] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
		done
	fi
	rm -rf "$tmp"
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(cd "$root" && CGO_ENABLED=0 $GO build -o "$tmp/workshop" ./cmd/workshop && CGO_ENABLED=0 $GO build -o "$tmp/workshop-bench" ./cmd/workshop-bench)

# wait_for LOG PATTERN: wait (at most 10 s) for a line in a server's log.
wait_for() {
	i=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 100 ]; then echo "bench.sh: no '$2' in $1 after 10 s" >&2; return 1; fi
		sleep 0.1
	done
}

# start_instance NAME [FLAGS...]: starts a server on a free port (the
# kernel picks it: -addr 127.0.0.1:0) and appends its URL to urls.
urls=""
server_pids=""
start_instance() {
	name=$1
	shift
	"$tmp/workshop" -addr 127.0.0.1:0 -log-level info -pprof="$pprof" -instance "$name" "$@" >"$tmp/$name.log" 2>&1 &
	pid=$!
	pids="$pids $pid"
	server_pids="${server_pids:+$server_pids,}$pid"
	wait_for "$tmp/$name.log" 'msg="workshop listening"'
	addr=$(sed -n 's/.*msg="workshop listening" addr=\([^ ]*\).*/\1/p' "$tmp/$name.log" | head -n 1)
	urls="${urls:+$urls,}http://$addr"
	if [ "$pprof" = true ]; then echo "bench.sh: $name pprof at http://$addr/debug/pprof/" >&2; fi
}

if [ "$mode" = redis ]; then
	command -v redis-server >/dev/null || { echo "bench.sh: install redis-server (apt-get install redis-server)" >&2; exit 1; }
	mkdir -p "$tmp/redis"
	# A free port: try a few random ones; redis-server exits if one is taken.
	tries=0
	while :; do
		tries=$((tries + 1))
		port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 20000))
		redis-server --bind 127.0.0.1 --port "$port" --dir "$tmp/redis" --save "" \
			--appendonly yes --appendfsync always >"$tmp/redis.log" 2>&1 &
		rpid=$!
		sleep 0.3
		if kill -0 "$rpid" 2>/dev/null && redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
			pids="$pids $rpid"
			break
		fi
		kill "$rpid" 2>/dev/null || true
		[ $tries -lt 10 ] || { echo "bench.sh: redis-server did not start" >&2; exit 1; }
	done
	echo "bench.sh: redis-server on 127.0.0.1:$port (appendfsync always)" >&2
	start_instance a -redis-url "redis://127.0.0.1:$port/0"
	start_instance b -redis-url "redis://127.0.0.1:$port/0"
else
	start_instance a -data-dir "$tmp/data"
fi

echo "bench.sh: servers $urls (pids $server_pids)" >&2
"$tmp/workshop-bench" -url "$urls" -server-pids "$server_pids" "$@"
