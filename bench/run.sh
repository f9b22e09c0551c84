#!/usr/bin/env bash
# Load benchmark: the webank_sign sidecar against plain Caddy and nginx, in
# one run, on 127.0.0.1 only. See bench/RESULTS.md for figures and how to
# read them.
#
#   bench/run.sh                      # about 3 minutes
#   ROUNDS=3 DURATION=3 bench/run.sh  # shorter
#
# It starts, each on 127.0.0.1:
#   upstream   bench/upstream: answers every request like WeBank's getOcrResult,
#              with one fixed body (about 2 MB with get_file=1)
#   fake       cmd/fakewebank: access tokens and SIGN tickets for d (and g)
#   a direct   wrk straight to the upstream
#   b caddy    $CADDY with reverse_proxy to the upstream
#   c nginx    nginx (Debian) with proxy_pass to the upstream, keepalive
#   d sidecar  $CADDY with webank_sign + reverse_proxy, warm ticket
#   e churn    as d, but with refresh 1s, against a second fake WeBank whose
#              tokens and tickets live 5 s: the ticket is replaced every
#              second while it is measured
#   f caddy2   with CONTROL=1 only: a second, identical plain Caddy, whose
#              ratio to b shows how much two equal targets differ here
#   h noretry  with CONTROL=1 only: d with retry_codes off, which tells the
#              cost of signing from that of the retry probe
#   g baseline with CADDY_BASELINE=path only: d's sidecar run by another
#              build (say, of the previous commit), for d/g in the same run
# and measures them with wrk, interleaved in rounds, each round in the
# opposite order of the one before (a b c d e, e d c b a, ...) so that a
# drift of the machine's speed does not favour one target; then in paired
# rounds, two targets loaded at the same time by one wrk each (b with d, d
# with e, with CONTROL=1 b with f and b with h, and with CADDY_BASELINE d
# with g and b with g), which shows their difference even when other work
# on the machine comes and goes; then b and d with get_file=1 (2 MB
# answers), interleaved and paired (and d with g). Its headline is the
# server's CPU time per request (user+system of the target's processes, from
# /proc, over the requests wrk completed), a figure that other work on the
# machine barely moves, and above all the paired d/b ratio of it: what the
# sidecar costs over plain Caddy. It then reports requests/s, p50 and p99
# besides, per target, the ratios d/b, d/a, e/d (and f/b, h/b, d/g, g/b)
# taken round by round (median, min and max), and the peak RSS (VmHWM) of d
# and b during the 2 MB rounds. It stops everything it started when it
# exits, however it exits. bench/RESULTS.md says how to read the figures: on
# a shared machine, trust the paired ratios, and read f/b (CONTROL=1) as
# their noise floor.
#
# The load generator is wrk (Debian's package): one thread, $CONNS keep-alive
# connections, a closed loop. It is C, so it takes little of the CPU the
# proxies need, and its latency histogram gives p50 and p99 (bench/report.lua
# prints them in microseconds). With PIN=1 (the default, on 2 or more CPUs)
# wrk runs on CPU 0 and every server on the other CPUs, so that every target
# gets the same placement rather than whatever the scheduler picks. Besides
# requests/s and latency, each target's CPU time per request (user+system
# of its processes, from /proc) is reported.
#
# Environment (defaults): CADDY (./caddy, built with ./xcaddy.build if
# missing), ROUNDS (8), PHOTO_ROUNDS (4), PAIRED_ROUNDS (4), DURATION (3,
# seconds per measurement), CONNS (8), CONTROL (0), CADDY_BASELINE (none),
# PIN (1), BENCH_PORT (18080: ports BENCH_PORT+1 to +10 are used). Logs,
# configs and wrk's outputs go to bench/out/.
set -euo pipefail
cd "$(dirname "$0")/.."

CADDY=${CADDY:-./caddy}
ROUNDS=${ROUNDS:-8}
PHOTO_ROUNDS=${PHOTO_ROUNDS:-4}
PAIRED_ROUNDS=${PAIRED_ROUNDS:-4}
DURATION=${DURATION:-3}
CONNS=${CONNS:-8}
CONTROL=${CONTROL:-0}
CADDY_BASELINE=${CADDY_BASELINE:-}
PIN=${PIN:-1}
BASE=${BENCH_PORT:-18080}
out=bench/out
wrk_threads=1

die() {
	echo "bench/run.sh: $*" >&2
	exit 1
}

declare -A port=(
	[upstream]=$((BASE + 1)) [caddy]=$((BASE + 2)) [nginx]=$((BASE + 3))
	[sidecar]=$((BASE + 4)) [churn]=$((BASE + 5)) [fake]=$((BASE + 6))
	[caddy2]=$((BASE + 7)) [fake2]=$((BASE + 8)) [baseline]=$((BASE + 9))
	[noretry]=$((BASE + 10))
)

# --- tools -------------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || missing+=(nginx)
if ((${#missing[@]})); then
	echo "installing ${missing[*]} with apt-get" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi
if [ ! -x "$CADDY" ]; then
	echo "building $CADDY with ./xcaddy.build (about 2 minutes)" >&2
	./xcaddy.build "$CADDY"
fi
if [ -n "$(find . -maxdepth 1 -name '*.go' ! -name '*_test.go' -newer "$CADDY" -print -quit)" ]; then
	echo "warning: $CADDY is older than the module's sources; rebuild it with ./xcaddy.build" >&2
fi
has_module() { # caddy-binary: whether it has webank_sign (grep -q could cut list-modules off with SIGPIPE)
	local mods
	mods=$("$1" list-modules) && grep -qx http.handlers.webank_sign <<<"$mods"
}
has_module "$CADDY" || die "$CADDY lacks http.handlers.webank_sign"
mkdir -p "$out"
rm -rf "$out"/data-* "$out"/xdg-* "$out"/nginx-tmp "$out"/*.txt
mkdir -p "$out/nginx-tmp"
go build -o "$out/upstream" ./bench/upstream
go build -o "$out/fakewebank" ./cmd/fakewebank

for name in "${!port[@]}"; do
	if (exec 3<>"/dev/tcp/127.0.0.1/${port[$name]}") 2>/dev/null; then
		die "127.0.0.1:${port[$name]} ($name) is in use; set BENCH_PORT to use other ports"
	fi
done

# --- processes ---------------------------------------------------------------
declare -A pid=()
cleanup() {
	local p
	for p in "${pid[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pid[@]}"; do
		wait "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ncpu=$(nproc)
server_cpus=() client_cpus=()
if ((PIN && ncpu >= 2)); then
	server_cpus=(taskset -c "1-$((ncpu - 1))")
	client_cpus=(taskset -c 0)
fi
start() { # name command...: runs command in the background, logging to $out/name.log
	local name=$1
	shift
	"${server_cpus[@]}" "$@" >"$out/$name.log" 2>&1 &
	pid[$name]=$!
}

wait_up() { # name url: waits until url answers 200, at most 10 s
	local i
	for i in $(seq 100); do
		curl -fsS -o /dev/null "$2" 2>/dev/null && return 0
		kill -0 "${pid[$1]}" 2>/dev/null || die "$1 exited; see $out/$1.log"
		sleep 0.1
	done
	die "$1 did not answer at $2; see $out/$1.log"
}

secret1=benchSecretOne0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ
secret2=benchSecretTwo0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ
start upstream "$out/upstream" -listen "127.0.0.1:${port[upstream]}"
start fake "$out/fakewebank" -listen "127.0.0.1:${port[fake]}" -app "IDABENCH1:$secret1"
start fake2 "$out/fakewebank" -listen "127.0.0.1:${port[fake2]}" -app "IDABENCH2:$secret2" \
	-token-ttl 5s -ticket-ttl 5s

caddyfile() { # name port [webank_sign options...]
	local name=$1 p=$2
	shift 2
	{
		printf '{\n\tadmin off\n\tpersist_config off\n\tstorage file_system %s\n}\n' "$PWD/$out/data-$name"
		printf 'http://127.0.0.1:%s {\n\tbind 127.0.0.1\n\thandle /api/server/getOcrResult {\n' "$p"
		if (($#)); then
			printf '\t\twebank_sign {\n'
			printf '\t\t\t%s\n' "$@"
			printf '\t\t}\n'
		fi
		printf '\t\treverse_proxy 127.0.0.1:%s\n\t}\n\thandle {\n\t\trespond 404\n\t}\n}\n' "${port[upstream]}"
	} >"$out/$name.Caddyfile"
}
caddyfile caddy "${port[caddy]}"
caddyfile caddy2 "${port[caddy2]}"
caddyfile sidecar "${port[sidecar]}" "app_id IDABENCH1" "secret {env.BENCH_SECRET1}" \
	"base_url http://127.0.0.1:${port[fake]}"
caddyfile churn "${port[churn]}" "app_id IDABENCH2" "secret {env.BENCH_SECRET2}" \
	"base_url http://127.0.0.1:${port[fake2]}" "refresh 1s"
caddyfile baseline "${port[baseline]}" "app_id IDABENCH1" "secret {env.BENCH_SECRET1}" \
	"base_url http://127.0.0.1:${port[fake]}"
caddyfile noretry "${port[noretry]}" "app_id IDABENCH1" "secret {env.BENCH_SECRET1}" \
	"base_url http://127.0.0.1:${port[fake]}" "retry_codes off"
caddies=(caddy sidecar churn)
((CONTROL)) && caddies+=(caddy2 noretry)
if [ -n "$CADDY_BASELINE" ]; then
	has_module "$CADDY_BASELINE" || die "$CADDY_BASELINE lacks http.handlers.webank_sign"
	caddies+=(baseline)
fi
for name in "${caddies[@]}"; do
	bin=$CADDY
	[ "$name" = baseline ] && bin=$CADDY_BASELINE
	XDG_DATA_HOME="$PWD/$out/xdg-$name" XDG_CONFIG_HOME="$PWD/$out/xdg-$name" \
		BENCH_SECRET1=$secret1 BENCH_SECRET2=$secret2 \
		start "$name" "$bin" run --adapter caddyfile --config "$out/$name.Caddyfile"
done

cat >"$out/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $PWD/$out/nginx.pid;
error_log $PWD/$out/nginx-error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $PWD/$out/nginx-tmp/body;
	proxy_temp_path $PWD/$out/nginx-tmp/proxy;
	fastcgi_temp_path $PWD/$out/nginx-tmp/fastcgi;
	uwsgi_temp_path $PWD/$out/nginx-tmp/uwsgi;
	scgi_temp_path $PWD/$out/nginx-tmp/scgi;
	upstream bench_upstream {
		server 127.0.0.1:${port[upstream]};
		keepalive 32;
	}
	server {
		listen 127.0.0.1:${port[nginx]};
		location = /api/server/getOcrResult {
			proxy_pass http://bench_upstream;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
		location / {
			return 404;
		}
	}
}
EOF
start nginx "$NGINX" -e "$PWD/$out/nginx-error.log" -p "$PWD/$out" -c "$PWD/$out/nginx.conf"

path=/api/server/getOcrResult
query="order_no=ORD20261126001&get_native=1"
declare -A url=(
	[a]="http://127.0.0.1:${port[upstream]}$path?$query"
	[b]="http://127.0.0.1:${port[caddy]}$path?$query"
	[c]="http://127.0.0.1:${port[nginx]}$path?$query"
	[d]="http://127.0.0.1:${port[sidecar]}$path?$query"
	[e]="http://127.0.0.1:${port[churn]}$path?$query"
	[f]="http://127.0.0.1:${port[caddy2]}$path?$query"
	[g]="http://127.0.0.1:${port[baseline]}$path?$query"
	[h]="http://127.0.0.1:${port[noretry]}$path?$query"
)
declare -A proc=([a]=upstream [b]=caddy [c]=nginx [d]=sidecar [e]=churn [f]=caddy2 [g]=baseline [h]=noretry)
declare -A label=([a]="a direct" [b]="b caddy" [c]="c nginx" [d]="d sidecar" [e]="e churn" [f]="f caddy2" [g]="g baseline" [h]="h noretry")
targets=(a b c d e)
((CONTROL)) && targets+=(f h)
[ -n "$CADDY_BASELINE" ] && targets+=(g)

wait_up fake "http://127.0.0.1:${port[fake]}/__fake/stats"
wait_up fake2 "http://127.0.0.1:${port[fake2]}/__fake/stats"
for t in "${targets[@]}"; do
	wait_up "${proc[$t]}" "${url[$t]}" # the sidecars' first request fetches their ticket
done
# The sidecars must sign, and the others must not.
for t in "${targets[@]}"; do
	want=false
	[[ $t == [degh] ]] && want=true
	got=$(curl -fsS -o /dev/null -D - "${url[$t]}" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-upstream-signed"{print $2}')
	[ "$got" = "$want" ] || die "${label[$t]}: upstream saw sign=$got, want $want"
done

token_calls() { # of the churn sidecar's fake WeBank
	curl -fsS "http://127.0.0.1:${port[fake2]}/__fake/stats" | grep -o '"token_calls":[0-9]*' | cut -d: -f2
}

# --- measuring -----------------------------------------------------------------
clk_tck=$(getconf CLK_TCK)
cpu_ticks() { # pid: CPU time (user+system, in ticks) of pid and of its child processes (nginx's workers)
	local p
	for p in "$1" $(pgrep -P "$1" || true); do
		cat "/proc/$p/stat" 2>/dev/null || true
	done | awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }'
}
run_wrk() { # target url file: wrk against url in the background, its pid in wrk_pid
	"${client_cpus[@]}" wrk -t"$wrk_threads" -c"$CONNS" -d"${DURATION}s" --latency -s bench/report.lua "$2" >"$3" &
	wrk_pid=$!
	pid[wrk-$1]=$wrk_pid
}
record() { # kind round target wrk-output cpu-ticks: appends "round target req/s p50_us p99_us cpu_us_per_request" to $out/kind.txt
	local line n dur p50 p99 bad sockerr
	line=$(grep '^RESULT ' "$4") || die "no result from wrk; see $4"
	read -r _ n dur p50 p99 bad sockerr <<<"$line"
	((bad == 0 && sockerr == 0)) || die "${label[$3]}: $bad non-2xx answers, $sockerr socket errors; see $4"
	awk -v r="$2" -v t="$3" -v n="$n" -v d="$dur" -v p50="$p50" -v p99="$p99" -v cpu="$5" -v hz="$clk_tck" \
		'BEGIN { printf "%s %s %.0f %d %d %.1f\n", r, t, n / (d / 1e6), p50, p99, cpu / hz * 1e6 / n }' >>"$out/$1.txt"
}
measure() { # kind round target url: loads one target
	local f="$out/wrk-$1-$3-$2.txt" cpu0
	cpu0=$(cpu_ticks "${pid[${proc[$3]}]}")
	run_wrk "$3" "$4" "$f"
	wait "$wrk_pid"
	unset "pid[wrk-$3]"
	record "$1" "$2" "$3" "$f" $(($(cpu_ticks "${pid[${proc[$3]}]}") - cpu0))
}
measure_pair() { # kind round x y url-x url-y: loads two targets at once, with one wrk each
	local fx="$out/wrk-$1-$3-$2.txt" fy="$out/wrk-$1-$4-$2.txt" cx cy wx wy
	cx=$(cpu_ticks "${pid[${proc[$3]}]}")
	cy=$(cpu_ticks "${pid[${proc[$4]}]}")
	# The wrk started first may get a head start: x's in odd rounds, y's in
	# even ones.
	if (($2 % 2)); then
		run_wrk "$3" "$5" "$fx"
		wx=$wrk_pid
		run_wrk "$4" "$6" "$fy"
		wy=$wrk_pid
	else
		run_wrk "$4" "$6" "$fy"
		wy=$wrk_pid
		run_wrk "$3" "$5" "$fx"
		wx=$wrk_pid
	fi
	wait "$wx" "$wy"
	unset "pid[wrk-$3]" "pid[wrk-$4]"
	# The pair names the round, so that b's figures from the b/d and the b/f
	# pairs of one round are not taken for each other.
	record "$1" "$2$3$4" "$3" "$fx" $(($(cpu_ticks "${pid[${proc[$3]}]}") - cx))
	record "$1" "$2$3$4" "$4" "$fy" $(($(cpu_ticks "${pid[${proc[$4]}]}") - cy))
}
results_small=$out/small.txt
results_photo=$out/photo.txt
results_paired=$out/paired.txt
results_paired_photo=$out/paired-photo.txt

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
reversed=()
for t in "${targets[@]}"; do
	reversed=("$t" "${reversed[@]}")
done
placement="not pinned"
((${#client_cpus[@]})) && placement="wrk on CPU 0, servers on CPUs 1-$((ncpu - 1))"
echo "wrk -t$wrk_threads -c$CONNS -d${DURATION}s, $ROUNDS rounds of ${targets[*]}; $ncpu CPUs, $placement" >&2
for t in "${targets[@]}"; do # warm-up, not counted
	"${client_cpus[@]}" wrk -t"$wrk_threads" -c"$CONNS" -d1s "${url[$t]}" >/dev/null
done
tokens_before=$(token_calls)
for r in $(seq "$ROUNDS"); do
	order=("${targets[@]}")
	((r % 2)) || order=("${reversed[@]}")
	for t in "${order[@]}"; do
		measure small "$r" "$t" "${url[$t]}"
	done
	echo "round $r done (${order[*]})" >&2
done
tokens_after=$(token_calls)

# Paired rounds: two targets loaded at the same time, each by its own wrk,
# so that whatever else the machine does weighs on both alike.
for r in $(seq "$PAIRED_ROUNDS"); do
	measure_pair paired "$r" b d "${url[b]}" "${url[d]}"
	measure_pair paired "$r" d e "${url[d]}" "${url[e]}"
	if ((CONTROL)); then
		measure_pair paired "$r" b f "${url[b]}" "${url[f]}"
		measure_pair paired "$r" b h "${url[b]}" "${url[h]}"
	fi
	if [ -n "$CADDY_BASELINE" ]; then
		measure_pair paired "$r" d g "${url[d]}" "${url[g]}"
		measure_pair paired "$r" b g "${url[b]}" "${url[g]}"
	fi
done

# The 2 MB rounds, b and d only; their peak RSS is reset first where the
# kernel allows it, so that VmHWM is the peak of these rounds.
reset=yes
for t in b d; do
	echo 5 2>/dev/null >"/proc/${pid[${proc[$t]}]}/clear_refs" || reset=no
done
for r in $(seq "$PHOTO_ROUNDS"); do
	order=(b d)
	((r % 2)) || order=(d b)
	for t in "${order[@]}"; do
		measure photo "$r" "$t" "${url[$t]/get_native=1/get_file=1}"
	done
done
for r in $(seq "$PAIRED_ROUNDS"); do
	measure_pair paired-photo "$r" b d "${url[b]/get_native=1/get_file=1}" "${url[d]/get_native=1/get_file=1}"
	((CONTROL)) && measure_pair paired-photo "$r" b f "${url[b]/get_native=1/get_file=1}" "${url[f]/get_native=1/get_file=1}"
	[ -n "$CADDY_BASELINE" ] && measure_pair paired-photo "$r" d g "${url[d]/get_native=1/get_file=1}" "${url[g]/get_native=1/get_file=1}"
done
hwm() { awk '/^VmHWM/ { print $2 }' "/proc/${pid[$1]}/status"; }
hwm_caddy=$(hwm caddy)
hwm_sidecar=$(hwm sidecar)

# --- report --------------------------------------------------------------------
summarize() { # results-file targets...
	local f=$1
	shift
	printf '%-10s %12s %9s %8s %8s   %s\n' target "CPU us/req" "req/s" "p50 ms" "p99 ms" "(medians over rounds; min-max)"
	for t in "$@"; do
		awk -v t="$t" -v l="${label[$t]}" '
			function med(a, n,   i, j, x) { for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j+1] = a[j]; a[j+1] = x } return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
			$2 == t { n++; r[n] = $3; p50[n] = $4 / 1000; p99[n] = $5 / 1000; cpu[n] = $6 }
			END {
				if (n == 0) exit
				mr = med(r, n); m50 = med(p50, n); m99 = med(p99, n); mc = med(cpu, n)
				printf "%-10s %12.1f %9.0f %8.2f %8.2f   CPU %.1f-%.1f us, req/s %.0f-%.0f, p99 %.2f-%.2f ms\n", l, mc, mr, m50, m99, cpu[1], cpu[n], r[1], r[n], p99[1], p99[n]
			}' "$f"
	done
}
ratios() { # results-file num den: per-round num/den of req/s, p99 and CPU per request
	awk -v x="$2" -v y="$3" '
		function med(a, n,   i, j, v) { for (i = 2; i <= n; i++) { v = a[i]; for (j = i - 1; j >= 1 && a[j] > v; j--) a[j+1] = a[j]; a[j+1] = v } return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
		$2 == x { rx[$1] = $3; px[$1] = $5; cx[$1] = $6 }
		$2 == y { ry[$1] = $3; py[$1] = $5; cy[$1] = $6 }
		END {
			for (k in rx) if (k in ry) { n++; tr[n] = rx[k] / ry[k]; tp[n] = px[k] / py[k]; tc[n] = cy[k] > 0 ? cx[k] / cy[k] : 0 }
			printf "%s/%s   CPU/req %.3f (%.3f-%.3f)   throughput %.3f (%.3f-%.3f)   p99 %.3f (%.3f-%.3f)   %d rounds\n", x, y, med(tc, n), tc[1], tc[n], med(tr, n), tr[1], tr[n], med(tp, n), tp[1], tp[n], n
		}' "$1"
}

{
	echo "$ncpu CPUs, $placement; load average at the start: $load_start; at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "== headline: server CPU time per request (user+system of its processes, from /proc), paired rounds"
	echo "   (two targets loaded at the same time, one wrk -t$wrk_threads -c$CONNS -d${DURATION}s each, x $PAIRED_ROUNDS rounds;"
	echo "   ratios are medians (min-max) of the per-round ratios; d/b CPU/req is THE figure: the sidecar over plain Caddy)"
	ratios "$results_paired" d b
	grep -E '^[0-9]+bd ' "$results_paired" >"$out/paired-bd.txt" || true
	summarize "$out/paired-bd.txt" b d
	echo "the other pairs:"
	ratios "$results_paired" e d
	((CONTROL)) && ratios "$results_paired" f b && ratios "$results_paired" h b
	[ -n "$CADDY_BASELINE" ] && ratios "$results_paired" d g && ratios "$results_paired" g b
	((CONTROL)) && echo "(f/b, two identical plain Caddies, is the noise floor of the paired ratios)"
	echo
	echo "== interleaved rounds, small answers (get_native=1, under 1 KB): wrk -t$wrk_threads -c$CONNS -d${DURATION}s x $ROUNDS rounds"
	summarize "$results_small" "${targets[@]}"
	echo
	echo "ratios, median (min-max) of the per-round ratios:"
	ratios "$results_small" d b
	ratios "$results_small" d a
	ratios "$results_small" c b
	ratios "$results_small" e d
	((CONTROL)) && ratios "$results_small" f b && ratios "$results_small" h b
	[ -n "$CADDY_BASELINE" ] && ratios "$results_small" d g && ratios "$results_small" g b
	echo "token fetches by the churn sidecar during the rounds: $((tokens_after - tokens_before))"
	echo
	echo "== 2 MB answers (get_file=1): wrk -t$wrk_threads -c$CONNS -d${DURATION}s x $PHOTO_ROUNDS rounds"
	summarize "$results_photo" b d
	ratios "$results_photo" d b
	echo "paired, x $PAIRED_ROUNDS rounds:"
	ratios "$results_paired_photo" d b
	((CONTROL)) && ratios "$results_paired_photo" f b
	[ -n "$CADDY_BASELINE" ] && ratios "$results_paired_photo" d g
	echo "peak RSS (VmHWM) during the 2 MB rounds$([ $reset = yes ] || echo ' (could not reset: since start)'):" \
		"sidecar $((hwm_sidecar / 1024)) MiB, caddy $((hwm_caddy / 1024)) MiB," \
		"difference $(((hwm_sidecar - hwm_caddy) / 1024)) MiB"
} | tee "$out/summary.txt"
