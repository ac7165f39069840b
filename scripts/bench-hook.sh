#!/bin/sh
# The libvirt hook's cost against /bin/true, run the way libvirt runs it (the qemu.d drop-in
# name, argv <vm> <op> <subop> -, the config at /etc/pitcrew/pitcrew.toml), for:
#   ignored op     `other started begin`: what almost every call is; the config is not read
#   unmanaged VM   `other prepare begin`: the config is read, the VM is not in it
#   managed no-op  `win11 release end`: the config lists the VM with `reattach = false`
# The config is put at /etc/pitcrew in a private mount namespace (an overlay on /etc), so the
# machine's own /etc is not touched: run it as root. Needs hyperfine (apt-get install hyperfine).
# Usage: scripts/bench-hook.sh [path/to/pitcrew] [runs]   (default: target/release/pitcrew 500)
set -eu
bin=$(readlink -f "${1:-target/release/pitcrew}")
runs=${2:-500}
if [ "${BENCH_HOOK_NS:-}" != 1 ]; then
	[ -x "$bin" ] || { echo "bench-hook.sh: no pitcrew at $bin (cargo build --release)" >&2; exit 2; }
	[ "$(id -u)" = 0 ] || { echo "bench-hook.sh: run as root (it mounts the config in a private mount namespace)" >&2; exit 2; }
	command -v hyperfine >/dev/null || { echo "bench-hook.sh: needs hyperfine (apt-get install hyperfine)" >&2; exit 2; }
	BENCH_HOOK_NS=1 exec unshare --mount --propagation private sh "$0" "$bin" "$runs"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir -p "$work/etc/pitcrew" "$work/hooks/qemu.d"
chmod 755 "$work/etc" "$work/etc/pitcrew"
printf 'auto = false\n\n[vm.win11]\ndevices = ["0000:01:00.0", "0000:01:00.1"]\nreattach = false\n' \
	>"$work/etc/pitcrew/pitcrew.toml"
chmod 644 "$work/etc/pitcrew/pitcrew.toml"
mount -t overlay overlay -o "lowerdir=$work/etc:/etc" /etc
hook="$work/hooks/qemu.d/pitcrew"
ln -s "$bin" "$hook"

# A hook that fails would make its timing meaningless: each case must exit 0 and say nothing.
for args in "other started begin -" "other prepare begin -" "win11 release end -"; do
	# shellcheck disable=SC2086 # the hook's arguments, split on purpose
	out=$("$hook" $args 2>&1 </dev/null) || { echo "bench-hook.sh: hook $args failed: $out" >&2; exit 1; }
	[ -z "$out" ] || { echo "bench-hook.sh: hook $args said: $out" >&2; exit 1; }
done

# In blocks, each timing every case in turn, so a load that comes and goes on the machine
# weighs on all of them alike; the figure is the median of the blocks' medians.
blocks=5
i=1
while [ $i -le $blocks ]; do
	hyperfine -N --warmup 20 --runs $((runs / blocks)) --style none --export-csv "$work/block$i.csv" \
		-n true /bin/true \
		-n 'ignored op' "$hook other started begin -" \
		-n 'unmanaged VM' "$hook other prepare begin -" \
		-n 'managed no-op' "$hook win11 release end -" 2>"$work/hyperfine.err" ||
		{ cat "$work/hyperfine.err" >&2; exit 1; }
	i=$((i + 1))
done

# Each block: command,mean,stddev,median,user,system,min,max (seconds). Wall time is what libvirt
# waits; CPU time (user + system, means) is printed beside it because other jobs on a shared
# machine stretch the former and hardly the latter.
size=$(stat -c %s "$bin")
cat "$work"/block*.csv | awk -F, -v size="$size" -v runs="$runs" -v blocks="$blocks" '
	$1 == "command" { next }
	{ n[$1]++; wall[$1, n[$1]] = $4; cpu[$1, n[$1]] = $5 + $6 }
	function median(a, c,   i, j, t, v) {
		for (i = 1; i <= n[c]; i++) v[i] = a[c, i]
		for (i = 2; i <= n[c]; i++)
			for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
		return v[int((n[c] + 1) / 2)]
	}
	END {
		w = median(wall, "true"); u = median(cpu, "true")
		printf "hook vs /bin/true (%d runs each in %d blocks, medians of the blocks; binary %.1f MB)\n", runs, blocks, size / 1e6
		printf "  %-14s %7s %6s %9s %6s\n", "", "wall", "ratio", "CPU", "ratio"
		printf "  %-14s %5.3f ms %6s %6.3f ms %6s\n", "/bin/true", w * 1000, "", u * 1000, ""
		split("ignored op,unmanaged VM,managed no-op", cases, ",")
		for (i = 1; i <= 3; i++) {
			c = cases[i]
			printf "  %-14s %5.3f ms %5.2fx %6.3f ms %5.2fx\n", c, median(wall, c) * 1000, median(wall, c) / w, median(cpu, c) * 1000, median(cpu, c) / u
		}
	}'
