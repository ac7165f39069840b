#!/bin/sh
# The OpenRC full stack's scenarios (xtask/src/openrc.rs), started by /etc/init.d/pitcrew-fulltest
# in the default runlevel from the per-run disk at /mnt/fulltest. No systemd here: services are
# OpenRC's, their state is /run/openrc/<state>/<svc>, their processes in
# /sys/fs/cgroup/openrc.<svc>. Results and timings on ttyS1 (RESULT / TIMING / free text, then
# DONE); then the machine powers off.
set -u
HERE=$(dirname "$0")
GPU=0000:00:03.0   # bochs-display, the "GPU"
AUDIO=0000:00:03.1 # intel-hda, its audio function (same IOMMU group)
PCI=/sys/bus/pci/devices
CARD=/dev/dri/by-path/pci-$GPU-card
SVC=pitcrew.gpu-vm
USER_NAME=pc
# What pitcrew said in the service and the hook (no journal here): a wrapper tees it.
LOG=/run/pitcrew-test.log
HIDE=/run/pitcrew-test.hide
STUCK_STEP_S=5
# shellcheck source=testbed/fullstack/common.sh disable=SC1091
. "$HERE/common.sh"
drivers() { echo "03.0=$(driver_of $GPU) 03.1=$(driver_of $AUDIO)"; }
home() { on $GPU bochs-drm && on $AUDIO snd_hda_intel; }
lent() { on $GPU vfio-pci && on $AUDIO vfio-pci; }
started() { [ -e "/run/openrc/started/$1" ]; }
state_of() {
	for s in starting started stopping inactive failed; do
		[ -e "/run/openrc/$s/$1" ] && echo "$s" && return
	done
	echo stopped
}
svc_status() { rc-service "$SVC" status 2>&1 | tr -s ' \n' ' '; }
xorg() { pgrep -o -x Xorg; }
cgroup_of() { sed -n 's/^0:://p' "/proc/$1/cgroup" 2>/dev/null; }
held_by_xorg() { fuser -s "$CARD"; }
running() { pgrep -u "$USER_NAME" -x "$1" >/dev/null; }
user_gone() { ! pgrep -u "$USER_NAME" >/dev/null; }
lightdm_pid() { cat /var/run/lightdm.pid 2>/dev/null || pgrep -o -x lightdm; }
since() { tail -c +"$(($1 + 1))" "$LOG"; }
log_size() { wc -c <"$LOG"; }
log_has() { since "$1" | grep -q "$2"; }
show_log() { since "$1" | sed 's/^/  pitcrew: /' >&9; }
alsa_card() {
	for c in "$PCI/$AUDIO"/sound/card*; do
		[ -e "$c" ] && echo "${c##*/card}" && return
	done
}
# The card's nodes are several words on purpose.
# shellcheck disable=SC2046
sound_held() { n=$(alsa_card) && [ -n "$n" ] && fuser -s /dev/snd/controlC"$n" $(ls /dev/snd/pcmC"$n"D* 2>/dev/null); }
session_pids() {
	echo "lightdm=$(lightdm_pid) Xorg=$(xorg) openbox=$(pgrep -u $USER_NAME -x openbox)" \
		"pipewire=$(pgrep -u $USER_NAME -x pipewire) wireplumber=$(pgrep -u $USER_NAME -x wireplumber)"
}

# The installed pitcrew behind a wrapper: copies what it says to $LOG and, while $HIDE exists,
# runs a detach as the systemd suites' ProtectProc=invisible drop-in does: in its own /proc with
# hidepid=invisible and without CAP_SYS_PTRACE, so a holder running as nobody is invisible.
wrap_pitcrew() {
	bin=$(sed -n 's/^pitcrew=//p' /etc/init.d/pitcrew)
	[ -x "$bin" ] || { why="/etc/init.d/pitcrew names no pitcrew binary ($bin)"; return 1; }
	mv "$bin" "$bin.real"
	cat >"$bin" <<-EOF
		#!/bin/bash
		exec > >(tee -a $LOG) 2> >(tee -a $LOG >&2)
		if [ -e $HIDE ] && [ "\$1" = detach ]; then
			exec unshare -m --propagation private sh -c 'mount -t proc -o hidepid=invisible proc /proc &&
				exec setpriv --bounding-set -sys_ptrace $bin.real "\$@"' - "\$@"
		fi
		exec -a "\$0" $bin.real "\$@"
	EOF
	chmod 755 "$bin"
}

setup() {
	need "lightdm not started by OpenRC within 180 s" wait_for 180 started lightdm || return 1
	need "Xorg never opened $CARD within 120 s" wait_for 120 held_by_xorg || return 1
	need "libvirtd not started by OpenRC" wait_for 60 started libvirtd || return 1
	need "openbox/wireplumber of $USER_NAME not running within 120 s" wait_for 120 running wireplumber || return 1
	say "desktop up: $(session_pids); Xorg in $(cgroup_of "$(xorg)")"
	: >"$LOG"
	"$HERE/pitcrew" install --vm gpu-vm >/tmp/install.out 2>&1 || {
		why="pitcrew install failed: $(tail -n 1 /tmp/install.out)"
		return 1
	}
	sed 's/^/  install: /' /tmp/install.out >&9
	need "install wrote no /etc/init.d/pitcrew" test -x /etc/init.d/pitcrew || return 1
	need "install wrote a systemd unit" test ! -e /etc/systemd/system/pitcrew@.service || return 1
	wrap_pitcrew || return 1
	"$HERE/pitcrew" doctor --vm gpu-vm 2>&1 | sed 's/^/  doctor: /' >&9
	need "virsh define failed" virsh define "$HERE/gpu-vm.xml"
}

# lend_return, dm_stop and runlevel_change: one lend, with Xorg on the card.
lend_with_desktop() {
	xorg_before=$(xorg) dm_before=$(lightdm_pid) at=$(log_size)
	t0=$(now_ms)
	virsh start gpu-vm >/tmp/start.out 2>&1
	rc=$?
	say "TIMING virsh_start_ms $(($(now_ms) - t0)) exit $rc"
	show_log "$at"
	[ $rc = 0 ] || {
		lend_why="virsh start exit $rc: $(tr '\n' ' ' </tmp/start.out)"
		pgrep -a -f "pitcrew|openrc|lightdm|Xorg" | sed 's/^/  ps: /' >&9
		return 1
	}
	lend_why=
	lent || lend_why="not both functions on vfio-pci"
	st=$(svc_status)
	say "  rc-service $SVC status (lent): $st"
	case "$st" in *started*) ;; *) lend_why="rc-service $SVC status while lent: $st" ;; esac
	# dm_stop: LightDM stopped and started again through OpenRC, its new Xorg in its cgroup.
	dm_why=
	if ! wait_for 60 started lightdm; then
		dm_why="lightdm not started again within 60 s (state $(state_of lightdm))"
	elif ! wait_for 60 sh -c "x=\$(pgrep -o -x Xorg) && [ \"\$x\" != '$xorg_before' ]"; then
		dm_why="no new Xorg within 60 s (still $(xorg))"
	else
		cg=$(cgroup_of "$(xorg)")
		say "  dm_stop: lightdm $dm_before -> $(lightdm_pid), Xorg $xorg_before -> $(xorg) in $cg"
		[ "$cg" = /openrc.lightdm ] || dm_why="the new Xorg is in $cg, not /openrc.lightdm"
		[ "$(lightdm_pid)" != "$dm_before" ] || dm_why="lightdm's PID did not change: it was not stopped"
		since "$at" | grep -qi "stop.*lightdm" || dm_why="pitcrew said nothing about stopping lightdm"
	fi
	[ -z "$dm_why" ] && [ "$(state_of lightdm)" = started ] || dm_why=${dm_why:-"lightdm is $(state_of lightdm)"}
	# runlevel_change: the default runlevel entered again while the VM runs.
	at=$(log_size)
	t0=$(now_ms)
	timeout 180 openrc default >/tmp/openrc.out 2>&1
	orc=$?
	say "TIMING openrc_default_ms $(($(now_ms) - t0)) exit $orc"
	sed 's/^/  openrc default: /' /tmp/openrc.out >&9
	show_log "$at"
	rl_why=
	lent || rl_why="the card left vfio-pci: $(drivers)"
	domstate_is gpu-vm running || rl_why="gpu-vm is $(virsh domstate gpu-vm 2>&1 | head -n 1)"
	st=$(svc_status)
	case "$st" in *started*) ;; *) rl_why="rc-service $SVC status after openrc default: $st" ;; esac
	[ $orc != 124 ] || rl_why="openrc default did not return within 180 s"
	# The return.
	t0=$(now_ms)
	at=$(log_size)
	virsh destroy gpu-vm >/tmp/destroy.out 2>&1 || { lend_why="virsh destroy: $(tr '\n' ' ' </tmp/destroy.out)"; return 1; }
	wait_for 60 home || lend_why=${lend_why:-"functions not back on bochs-drm/snd_hda_intel within 60 s"}
	wait_for 60 sh -c "rc-service $SVC status | grep -q stopped" || lend_why=${lend_why:-"$SVC status after destroy: $(svc_status)"}
	say "TIMING destroy_to_home_ms $(($(now_ms) - t0))"
	show_log "$at"
	say "  rc-service $SVC status (returned): $(svc_status)"
	[ -z "$lend_why" ]
}

# log_out: LightDM stopped through OpenRC, the user's processes gone (elogind does not end them:
# the session's PipeWire would outlive it), no keep-off rule left.
log_out() {
	openrc-run /etc/init.d/lightdm stop >/dev/null 2>&1
	pkill -u "$USER_NAME"
	need "the user's processes still run 30 s after logout" wait_for 30 user_gone || return 1
	[ -e /etc/udev/rules.d/73-pitcrew-keep-off.rules ] && "$HERE/pitcrew" keep-off --undo "$GPU" >/dev/null 2>&1
	return 0
}
fresh_session() {
	log_out || return 1
	"$HERE/pitcrew" keep-off "$@" "$GPU" >/tmp/keepoff.out 2>&1 || { why="keep-off $*: $(tr '\n' ' ' </tmp/keepoff.out)"; return 1; }
	sed 's/^/  keep-off: /' /tmp/keepoff.out >&9
	openrc-run /etc/init.d/lightdm start >/dev/null 2>&1
	need "wireplumber of $USER_NAME not running within 120 s of the login" wait_for 120 running wireplumber || return 1
	need "openbox of $USER_NAME not running" wait_for 60 running openbox
}
# lend_keeping: virsh start/destroy while the session runs, its PIDs kept.
lend_keeping() {
	before=$(session_pids)
	case "$before" in *=\ * | *=) why="not every process of the desktop runs: $before"; return 1 ;; esac
	at=$(log_size)
	t0=$(now_ms)
	virsh start gpu-vm >/tmp/start.out 2>&1 || { why="virsh start: $(tr '\n' ' ' </tmp/start.out)"; return 1; }
	say "TIMING virsh_start_$1_ms $(($(now_ms) - t0))"
	show_log "$at"
	need "not both functions on vfio-pci" lent || return 1
	since "$at" | grep -qiE "(stop|start).*lightdm" && { why="the detach stopped or started lightdm"; return 1; }
	during=$(session_pids)
	[ "$during" = "$before" ] || { why="PIDs changed at the lend: $before -> $during"; return 1; }
	virsh destroy gpu-vm >/dev/null 2>&1
	need "functions not back within 60 s" wait_for 60 home || return 1
	after=$(session_pids)
	[ "$after" = "$before" ] || { why="PIDs changed by the return: $before -> $after"; return 1; }
}
desktop_stays() {
	fresh_session || return 1
	fuser -s "$(readlink -f "$CARD")" && { why="Xorg opened the card despite keep-off"; return 1; }
	lend_keeping kept || return 1
	need "the X session no longer answers" env DISPLAY=:0 XAUTHORITY=/var/run/lightdm/root/:0 xdpyinfo
}
sound_released() {
	fresh_session --keep-sound || return 1
	need "WirePlumber never opened ALSA card $(alsa_card) of 03.1 within 60 s" wait_for 60 sound_held || return 1
	pw=$(pgrep -u $USER_NAME -x pipewire)
	bus=$(tr '\0' '\n' <"/proc/$pw/environ" | grep '^DBUS_SESSION_BUS_ADDRESS=')
	say "  sound server $pw: $bus"
	lend_at=$(log_size)
	lend_keeping sound || return 1
	need "the detach did not ask through the reservation (ReserveDevice1.Audio)" log_has "$lend_at" ReserveDevice1.Audio || return 1
	need "the sound server did not release the card through the reservation" log_has "$lend_at" "released the card" || return 1
	need "the sound server did not take the card back within 60 s" wait_for 60 sound_held
}

audio_unbound() { [ "$(driver_of "$AUDIO")" = none ]; }
stuck_write_service() {
	log_out || return 1
	n=$(alsa_card)
	[ -n "$n" ] || { why="$AUDIO has no sound card"; return 1; }
	sed -i "/^\[vm\.\(gpu-vm\|\"gpu-vm\"\)\]\$/a step_timeout = $STUCK_STEP_S" /etc/pitcrew/pitcrew.toml
	setpriv --reuid=nobody --regid=nogroup --clear-groups sleep infinity 3<"/dev/snd/controlC$n" &
	holder=$!
	touch "$HIDE"
	at=$(log_size)
	t0=$(now_ms)
	virsh start gpu-vm >/tmp/stuck.out 2>&1
	rc=$?
	ms=$(($(now_ms) - t0))
	rm -f "$HIDE"
	say "TIMING virsh_start_stuck_ms $ms exit $rc"
	sed 's/^/  virsh: /' /tmp/stuck.out >&9
	show_log "$at"
	stuck=$(ps -eo pid=,stat=,args= | awk '$2 ~ /^D/ && /pitcrew/')
	say "  in D state: ${stuck:-nothing}; $SVC: $(state_of $SVC) ($(svc_status))"
	[ $rc != 0 ] || { why="virsh start succeeded"; return 1; }
	[ $ms -lt $((STUCK_STEP_S * 1000 + 30000)) ] || { why="virsh start took $ms ms (step timeout ${STUCK_STEP_S} s)"; return 1; }
	need "virsh's error has no pitcrew line" grep -q "pitcrew: .*failed" /tmp/stuck.out || return 1
	need "virsh's error does not name the stuck unbind" grep -q "did not return within ${STUCK_STEP_S}s" /tmp/stuck.out || return 1
	pgrep -f "pitcrew[^ ]* detach" >/dev/null && { why="a pitcrew detach still runs: $(pgrep -af 'pitcrew[^ ]* detach')"; return 1; }
	[ "$(state_of $SVC)" = stopped ] || { why="$SVC is $(state_of $SVC), not stopped"; return 1; }
	need "03.0 not rolled back to bochs-drm" on "$GPU" bochs-drm || return 1
	kill -9 "$holder"
	need "the stuck unbind did not complete within 30 s of the holder's end" wait_for 30 audio_unbound || return 1
	"$HERE/pitcrew" reattach "$GPU" >/dev/null 2>&1
	need "03.0/03.1 not home after the reattach" wait_for 30 home
	stuck_summary="virsh start failed after $ms ms naming the stuck unbind; $SVC stopped (not starting); no detach left"
}

say "full stack (OpenRC): $(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' /etc/os-release), $(uname -r), PID 1 $(cat /proc/1/comm), OpenRC $(openrc --version 2>&1 | head -n 1), systemd $(
	[ -e /lib/systemd/systemd ] && echo present || echo absent), $(drivers)"
say "TIMING boot_to_runner_ms $(awk '{printf "%d", $1 * 1000}' /proc/uptime)"
lend_why='' dm_why="no lend" rl_why="no lend"
if setup; then
	lend_with_desktop
	why=$lend_why verdict lend_return $? "virsh start lent 03.0+03.1 ($SVC started), destroy returned them ($SVC stopped)"
	[ -z "$lend_why" ] && [ -z "$dm_why" ]
	why=$dm_why verdict dm_stop $? "Xorg on the card: LightDM stopped and started through OpenRC (started), the new Xorg in /openrc.lightdm"
	[ -z "$rl_why" ]
	why=$rl_why verdict runlevel_change $? "openrc default while gpu-vm ran: card still on vfio-pci, $SVC still started"
	desktop_stays
	verdict desktop_stays $? "keep-off: lent and returned with LightDM, Xorg, openbox, PipeWire, WirePlumber keeping their PIDs"
	domstate_is gpu-vm "shut off" || { virsh destroy gpu-vm >/dev/null 2>&1; wait_for 60 home; }
	sound_released
	verdict sound_released $? "the sound server (bus from its environ) released the card through the reservation and took it back, PIDs kept"
	domstate_is gpu-vm "shut off" || { virsh destroy gpu-vm >/dev/null 2>&1; wait_for 60 home; }
	stuck_write_service
	verdict stuck_write_service $? "${stuck_summary:-}"
else
	for s in lend_return dm_stop runlevel_change desktop_stays sound_released stuck_write_service; do
		say "RESULT $s FAIL setup: $why"
	done
fi
say DONE
sync
poweroff -f
