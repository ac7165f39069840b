#!/bin/busybox sh
# shellcheck shell=sh
# PID 1 of the test bed guest. Mounts the basics, loads the host drivers, records the baseline,
# then runs what the kernel command line asks for:
#   pitcrew.mode=test pitcrew.scenarios=a,b  run testbed/scenarios/a.sh, b.sh
#   pitcrew.mode=demo                        run testbed/demo.sh
#   pitcrew.mode=bench / pitcrew.bench=N     run testbed/bench.sh with N rounds
# Results go to ttyS1; "DONE" ends them, then the VM powers off.

/bin/busybox mkdir -p /proc /sys /dev /run /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs tmpfs /tmp
exec </dev/console >/dev/console 2>&1
stty -F /dev/ttyS1 raw -echo 2>/dev/null
exec 9>/dev/ttyS1

. /testbed/lib.sh

finish() {
	say DONE
	sync
	poweroff -f
}

MODE=test SCENARIOS='' BENCH=0
read -r cmdline </proc/cmdline
for w in $cmdline; do
	case "$w" in
	pitcrew.mode=*) MODE=${w#*=} ;;
	pitcrew.scenarios=*) SCENARIOS=$(echo "${w#*=}" | tr , ' ') ;;
	pitcrew.bench=*) BENCH=${w#*=} ;;
	esac
done

# The host's own drivers, as a desktop would have them at boot (vfio is not loaded).
t0=$(now_us)
# HOST_MODULES (lib.sh) has the codec driver first: snd_hda_intel would ask for it through
# modules.alias, which busybox modprobe does not read.
for m in $HOST_MODULES; do modprobe "$m" || log "modprobe $m failed"; done
# The split-slot machine's NIC in the GPU's slot.
[ -e "$PCI/$NIC" ] && { modprobe e1000e || log "modprobe e1000e failed"; }
host_ready() {
	[ "$(driver_of $GPU)" = "$GPU_DRIVER" ] && [ "$(driver_of $AUDIO)" = snd_hda_intel ] &&
		{ [ "$GPU_DRIVER" = none ] || card_node_ok $GPU; } &&
		{ [ ! -e "$PCI/$NIC" ] || [ "$(driver_of "$NIC")" = e1000e ]; }
}
if ! wait_until 10000 host_ready; then
	SETUP_ERROR="setup: $GPU on $(driver_of $GPU), $AUDIO on $(driver_of $AUDIO), card '$(card_of $GPU)'"
fi
log "drivers loaded in $(us_to_ms $(($(now_us) - t0))) ms; uptime $(cut -d' ' -f1 /proc/uptime) s"
mkdir -p /run/testbed
snapshot >$BASELINE
log "baseline:"
sed 's/^/    /' "$BASELINE"
for d in "$PCI"/*; do
	b=$(basename "$d")
	log "  $b class=$(cat "$d"/class) group=$(group_of "$b") driver=$(driver_of "$b")"
done

case "$MODE" in
test)
	for s in $SCENARIOS; do
		SCENARIO=$s
		if [ -n "$SETUP_ERROR" ]; then
			say "RESULT $s FAIL $SETUP_ERROR"
			continue
		fi
		if ! restore_baseline; then
			say "RESULT $s FAIL could not restore the boot-time state before the scenario"
			snapshot | diff $BASELINE -
			continue
		fi
		log "=== scenario $s"
		t0=$(now_us)
		rm -f /run/testbed/verdict
		# shellcheck source=/dev/null
		(. "/testbed/scenarios/$s.sh")
		rc=$?
		log "=== $s exit $rc after $(us_to_ms $(($(now_us) - t0))) ms"
		# A scenario that ends without a verdict (a typo, a crash) must not pass silently.
		[ -e /run/testbed/verdict ] || say "RESULT $s FAIL the script ended (exit $rc) without a verdict"
	done
	SCENARIO=''
	if [ "$BENCH" -gt 0 ] && [ -z "$SETUP_ERROR" ]; then
		restore_baseline && (. /testbed/bench.sh)
	fi
	;;
demo) (. /testbed/demo.sh) ;;
bench) (. /testbed/bench.sh) ;;
*) say "unknown pitcrew.mode=$MODE" ;;
esac
finish
