# shellcheck shell=sh
# Shared helpers for the guest scripts (busybox sh). Sourced by init.sh and every scenario.
# Results go to fd 9 (ttyS1, opened by init.sh); everything else goes to the console (ttyS0).
# The device names below are used by the scripts sourced after this one.
# shellcheck disable=SC2034

GPU=0000:00:03.0        # bochs-display, the "GPU"
AUDIO=0000:00:03.1      # intel-hda, its audio function (same IOMMU group)
GPU2=0000:00:04.0       # second bochs-display, own group (machine two-gpus only)
NIC=0000:00:03.2        # e1000e in the GPU's slot, own group (machine split-slot only)
PORT_NIC=0000:01:00.0   # e1000e behind the root port, reset by pm or the bus (split-slot only)
BRIDGE=0000:00:05.0     # pcie-root-port
HOSTBRIDGE=0000:00:00.0 # q35 host bridge
PCI=/sys/bus/pci/devices
PC_TIMEOUT=120          # seconds before a hung pitcrew is killed (TCG is slow)
# The host drivers init.sh loads at boot (pitcrew.host_modules= on the kernel command line
# changes them), and so the driver the GPU has at boot.
HOST_MODULES="bochs snd-hda-codec-generic snd-hda-intel"
# shellcheck disable=SC2013 # the command line's words, not its lines
for w in $(cat /proc/cmdline 2>/dev/null); do
	case "$w" in pitcrew.host_modules=*) HOST_MODULES=$(echo "${w#*=}" | tr , ' ') ;; esac
done
case " $HOST_MODULES " in *" bochs "*) GPU_DRIVER=bochs-drm ;; *) GPU_DRIVER=none ;; esac

say() { echo "$*" >&9; }
log() { echo "[${SCENARIO:-init}] $*"; }

# Verdicts: one RESULT line per scenario; the scenario runs in a subshell, so exit ends it.
pass() { say "RESULT $SCENARIO PASS $*"; : >/run/testbed/verdict; exit 0; }
fail() { say "RESULT $SCENARIO FAIL $*"; : >/run/testbed/verdict; log "FAIL: $*"; exit 1; }

# Microseconds since boot: /proc/timer_list has ns, /proc/uptime is the 10 ms fallback.
now_us() {
	ns=$(sed -n '/^now at /{s/^now at \([0-9]*\) nsecs.*/\1/p;q}' /proc/timer_list 2>/dev/null)
	if [ -n "$ns" ]; then
		echo $((ns / 1000))
	else
		awk '{ printf "%d\n", $1 * 1000000 }' /proc/uptime
	fi
}
us_to_ms() { awk -v u="$1" 'BEGIN { printf "%.1f\n", u / 1000 }'; }

driver_of() {
	if [ -e "$PCI/$1/driver" ]; then basename "$(readlink "$PCI/$1/driver")"; else echo none; fi
}
group_of() { [ -e "$PCI/$1/iommu_group" ] && basename "$(readlink "$PCI/$1/iommu_group")"; }
# The DRM card of a PCI device (card0, card1, ...), empty when it has none.
card_of() {
	for c in "$PCI/$1"/drm/card*; do
		[ -e "$c" ] && basename "$c" && return
	done
}
# The names in directory $1 on one line, leaving out $2.
names() {
	for f in "$1"/*; do
		[ -e "$f" ] && [ "${f##*/}" != "${2:-}" ] && printf '%s ' "${f##*/}"
	done
}
card_node_ok() { c=$(card_of "$1"); [ -n "$c" ] && [ -c "/dev/dri/$c" ]; }
has_module() { grep -q "^$1 " /proc/modules; }
# Alive and not a zombie.
alive() { [ -r "/proc/$1/stat" ] && ! awk '{ exit !($3 == "Z") }' "/proc/$1/stat"; }

# wait_until MS CMD...: poll CMD until it succeeds or MS milliseconds have passed.
wait_until() {
	limit=$(($(now_us) + $1 * 1000))
	shift
	until "$@"; do
		[ "$(now_us)" -gt "$limit" ] && return 1
		sleep 0.05
	done
}

expect_driver() {
	got=$(driver_of "$1")
	[ "$got" = "$2" ] || fail "$1 is on $got, expected $2${3:+ ($3)}"
}

# pc ARGS...: run pitcrew (killed after PC_TIMEOUT s), log its output, set PC_RC / PC_OUT / PC_MS.
pc() {
	log "\$ pitcrew $*"
	pc_timed timeout "$PC_TIMEOUT" pitcrew "$@"
}
# pc_timed CMD...: run CMD (a pitcrew command line), log its output, set PC_RC / PC_OUT / PC_MS.
pc_timed() {
	t0=$(now_us)
	"$@" >/tmp/pc.out 2>&1
	PC_RC=$?
	PC_MS=$(us_to_ms $(($(now_us) - t0)))
	PC_OUT=$(cat /tmp/pc.out)
	sed 's/^/    /' /tmp/pc.out
	log "exit $PC_RC after $PC_MS ms"
	return $PC_RC
}
# pc_ok ARGS...: pitcrew must exit 0.
pc_ok() { pc "$@" || fail "pitcrew $* exited $PC_RC: $(echo "$PC_OUT" | tail -n 1)"; }

# The kernel console drawn on frame buffers (fbcon), found by its name as pitcrew does.
fbcon_dir() {
	for v in /sys/class/vtconsole/*; do
		grep -q "frame buffer device" "$v/name" 2>/dev/null && echo "$v" && return
	done
}
fbcon_bound() { v=$(fbcon_dir) && [ -n "$v" ] && [ "$(cat "$v/bind")" = 1 ]; }
# The PCI or platform device frame buffer $1 (fb0) belongs to.
fb_device() { basename "$(readlink "/sys/class/graphics/$1/device" 2>/dev/null)"; }
# The frame buffers on device $1, by node name.
fbs_on() { for f in /sys/class/graphics/fb*; do [ "$(fb_device "${f##*/}")" = "$1" ] && echo "${f##*/}"; done; }
# Firmware frame buffer platform devices with their drivers.
firmware_fbs() {
	for d in /sys/bus/platform/devices/*-framebuffer.*; do
		[ -e "$d" ] || continue
		drv=none
		[ -e "$d/driver" ] && drv=$(basename "$(readlink "$d/driver")")
		echo "${d##*/} $drv"
	done
}
# The names /proc/iomem shows inside device $1's ranges (what claims its BARs).
iomem_claims() {
	awk -v dev="$1" '
		{ match($0, /^ */); ind = RLENGTH; name = $0; sub(/^ *[0-9a-f]+-[0-9a-f]+ : /, "", name) }
		inside && ind > depth { print name; next }
		{ inside = 0 }
		name == dev { inside = 1; depth = ind }' /proc/iomem | sort -u
}

# Everything a handover can change, as text: drivers, overrides, modules, device nodes, the
# console and the frame buffers.
snapshot() {
	for d in "$PCI"/*; do
		b=$(basename "$d")
		echo "$b $(driver_of "$b") override=$(cat "$d/driver_override" 2>/dev/null)"
	done
	cut -d' ' -f1 /proc/modules | sort
	echo "vfio groups: $(names /dev/vfio vfio)"
	echo "dri: $(names /dev/dri)"
	for v in /sys/class/vtconsole/*; do echo "console ${v##*/} $(cat "$v/bind") $(cat "$v/name")"; done
	for f in /sys/class/graphics/fb*; do [ -e "$f/device" ] && echo "fb ${f##*/} $(fb_device "${f##*/}")"; done
	firmware_fbs | sed 's/^/platform /'
}

# The state right after boot, recorded by init.sh. vfio-pci staying loaded after a reattach is
# not a difference (vfio was not loaded at boot; nothing asks pitcrew to unload it).
BASELINE=/run/testbed/baseline
no_vfio() { grep -v -E '^(vfio|vfio_[a-z0-9_]+|irqbypass)$'; }
at_baseline() { [ "$(snapshot | no_vfio)" = "$(no_vfio <$BASELINE)" ]; }
# expect_baseline WHEN: fail, with the difference in the log, unless at the boot-time state.
expect_baseline() {
	at_baseline && return 0
	no_vfio <$BASELINE >/tmp/base.txt
	snapshot | no_vfio | diff /tmp/base.txt - | sed 's/^/    /'
	fail "not at the boot-time state $1: $(snapshot | no_vfio | diff /tmp/base.txt - | grep '^[-+][^-+]' | tr '\n' ' ')"
}

# Put every PCI device back on its boot-time driver with raw sysfs writes, whatever a failed
# scenario left behind, so the next scenario starts clean.
restore_baseline() {
	rm -rf /run/pitcrew /etc/pitcrew
	grep '^platform ' "$BASELINE" | while read -r _ dev drv; do
		[ -e "/sys/bus/platform/devices/$dev/driver" ] || echo "$dev" >"/sys/bus/platform/drivers/$drv/bind"
	done 2>/dev/null
	for m in $HOST_MODULES; do modprobe "$m" 2>/dev/null; done
	[ -e "$PCI/$NIC" ] && modprobe e1000e 2>/dev/null
	while read -r bdf drv rest; do
		case "$bdf" in 0000:*) ;; *) continue ;; esac
		[ "$(driver_of "$bdf")" = "$drv" ] && continue
		echo >"$PCI/$bdf/driver_override"
		[ -e "$PCI/$bdf/driver" ] && echo "$bdf" >"$PCI/$bdf/driver/unbind"
		echo "$bdf" >/sys/bus/pci/drivers_probe
	done <"$BASELINE"
	grep '^console .* frame buffer device$' "$BASELINE" | while read -r _ id bind _; do
		[ "$(cat "/sys/class/vtconsole/$id/bind")" = "$bind" ] || echo "$bind" >"/sys/class/vtconsole/$id/bind"
	done 2>/dev/null
	# Unload what was not loaded at boot (vfio-pci and its helpers), users before their deps.
	for _ in 1 2 3; do
		cut -d' ' -f1 /proc/modules | while read -r m; do
			grep -qx "$m" "$BASELINE" || modprobe -r "$m" 2>/dev/null
		done
	done
	wait_until 5000 at_baseline
}

# pc_start ARGS...: run pitcrew in the background (PC_PID), for scenarios where it may hang.
pc_start() {
	log "\$ pitcrew $* (in the background)"
	PC_T0=$(now_us)
	pitcrew "$@" >/tmp/pc.out 2>&1 &
	PC_PID=$!
}
pc_gone() { ! alive "$PC_PID"; }
# pc_wait MS: wait up to MS ms for it to exit, then set PC_RC / PC_OUT / PC_MS like pc.
# Returns 1, leaving it running, when it did not exit in time.
pc_wait() {
	if ! wait_until "$1" pc_gone; then
		log "pitcrew (pid $PC_PID) still runs after $1 ms: state $(awk '{ print $3 }' "/proc/$PC_PID/stat"), wchan $(cat "/proc/$PC_PID/wchan" 2>/dev/null)"
		return 1
	fi
	wait "$PC_PID"
	PC_RC=$?
	PC_MS=$(us_to_ms $(($(now_us) - PC_T0)))
	PC_OUT=$(cat /tmp/pc.out)
	sed 's/^/    /' /tmp/pc.out
	log "exit $PC_RC after $PC_MS ms"
}

# Processes in uninterruptible sleep (D), as "pid comm" lines; kernel threads excluded.
d_state() {
	for s in /proc/[0-9]*/stat; do
		awk '$3 == "D" { print $1, $2 }' "$s" 2>/dev/null
	done | while read -r pid comm; do
		[ -n "$(cat "/proc/$pid/cmdline" 2>/dev/null)" ] && echo "$pid $comm"
	done
}

# short_steps SECS: a config whose steps time out after SECS, so a write that hangs is cut
# off within the scenario's budget. Removed by restore_baseline.
short_steps() {
	mkdir -p /etc/pitcrew
	printf '[defaults]\nstep_timeout = %s\n' "$1" >/etc/pitcrew/pitcrew.toml
	chmod 0644 /etc/pitcrew/pitcrew.toml
}

# The sound card of a PCI function (card0), empty when it has none.
sound_card_of() {
	for c in "$PCI/$1"/sound/card*; do
		[ -e "$c" ] && basename "$c" && return
	done
}
has_sound_card() { [ -n "$(sound_card_of "$1")" ]; }
# The first PCM node of sound card number $1 (pcmC0D0p), empty when it has none.
pcm_of() {
	for p in /dev/snd/pcmC"$1"D*; do
		[ -c "$p" ] && basename "$p" && return
	done
}
