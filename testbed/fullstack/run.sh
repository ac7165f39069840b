#!/bin/sh
# The full-stack scenarios, run by pitcrew-fulltest.service once graphical.target is up, from the
# per-run disk mounted at /mnt/fulltest (pitcrew, this script, gpu-vm.xml). Results and timings go
# to ttyS1 (RESULT / TIMING / free text lines, then DONE); then the machine powers off.
set -u
HERE=$(dirname "$0")
GPU=0000:00:03.0   # bochs-display, the "GPU"
AUDIO=0000:00:03.1 # intel-hda, its audio function (same IOMMU group)
BRIDGE=0000:00:05.0
PCI=/sys/bus/pci/devices
CARD=/dev/dri/by-path/pci-$GPU-card
# The hook starts pitcrew@<vm>.service with the name escaped (gpu-vm: pitcrew@gpu\x2dvm.service).
UNIT=$(systemd-escape --template=pitcrew@.service gpu-vm)
BAD_UNIT=$(systemd-escape --template=pitcrew@.service gpu-vm-bad)
# shellcheck source=testbed/fullstack/common.sh disable=SC1091
. "$HERE/common.sh"
home() { on $GPU bochs-drm && on $AUDIO snd_hda_intel; }
lent() { on $GPU vfio-pci && on $AUDIO vfio-pci; }
held_by_xorg() { fuser -s "$CARD"; }
# pitcrew's logind sleep inhibitor for the VM, as `systemd-inhibit --list` shows it.
inhibitor() { systemd-inhibit --list --no-legend --no-pager 2>/dev/null | grep "GPU lent to VM gpu-vm"; }
inhibited() { inhibitor >/dev/null; }
not_inhibited() { ! inhibited; }
drivers() { echo "03.0=$(driver_of $GPU) 03.1=$(driver_of $AUDIO)"; }

# doctor LABEL [ARGS]: run pitcrew doctor, show its lines, leave its output in /tmp/doctor.out
# and its exit status in $doctor_rc.
doctor() {
	label=$1
	shift
	"$HERE/pitcrew" doctor "$@" >/tmp/doctor.out 2>&1
	doctor_rc=$?
	sed "s/^/  doctor ($label): /" /tmp/doctor.out >&9
	say "  doctor ($label): exit $doctor_rc"
}
has() { grep -qF -- "$1" /tmp/doctor.out; }

setup() {
	need "desktop not up: lightdm not active within 180 s" wait_for 180 unit_is lightdm.service active || return 1
	need "Xorg never opened $CARD within 120 s" wait_for 120 held_by_xorg || return 1
	say "desktop up: Xorg holds $CARD ($(fuser "$CARD" 2>&1 | tr -s ' '))"
	# The daemon runs before the hook exists, as on a user's host: install must reload it.
	need "libvirtd.service did not start" systemctl start libvirtd.service || return 1
	doctor "before install"
	doctor_before_rc=$doctor_rc
	has "fail  hook: /etc/libvirt/hooks/qemu.d/pitcrew missing" && doctor_before=ok || doctor_before="no failing hook line"
	"$HERE/pitcrew" install --vm gpu-vm >/tmp/install.out 2>&1 || {
		why="pitcrew install failed: $(tail -n 1 /tmp/install.out)"
		return 1
	}
	sed 's/^/  install: /' /tmp/install.out >&9
	doctor "after install"
	doctor_after_rc=$doctor_rc
	has "ok    libvirt libvirtd.service: reloaded since the hook was installed" &&
		has "fail  vm gpu-vm: not defined" && doctor_after=ok || doctor_after="no reload or undefined-VM line"
	need "virsh define failed" virsh define "$HERE/gpu-vm.xml" || return 1
	doctor "VM defined" --vm gpu-vm
	doctor_vm_rc=$doctor_rc
	has "ok    vm gpu-vm: defined; passes GPU 0000:00:03.0 through" && doctor_vm=ok || doctor_vm="no line for the defined VM"
	sed 's/gpu-vm/gpu-vm-bad/' "$HERE/gpu-vm.xml" >/tmp/gpu-vm-bad.xml
	need "virsh define gpu-vm-bad failed" virsh define /tmp/gpu-vm-bad.xml || return 1
	# The bad VM names the PCIe root port: `pitcrew detach --vm` refuses it (exit 2).
	printf '\n[vm."gpu-vm-bad"]\ndevices = ["%s"]\n' "$BRIDGE" >>/etc/pitcrew/pitcrew.toml
}

lend_and_return() {
	t0=$(now_ms)
	virsh start gpu-vm >/tmp/start.out 2>&1
	rc=$?
	t1=$(now_ms)
	say "TIMING virsh_start_ms $((t1 - t0)) exit $rc"
	journal "$UNIT"
	[ $rc = 0 ] || { why="virsh start exit $rc: $(tr '\n' ' ' </tmp/start.out)"; return 1; }
	need "$UNIT not active after virsh start" unit_is "$UNIT" active || {
		journalctl -q --no-pager -b -u libvirtd.service | tail -n 15 | sed 's/^/  libvirtd: /' >&9
		return 1
	}
	need "not both functions on vfio-pci" lent || return 1
	need "domain not running" domstate_is gpu-vm running || return 1
	need "systemd-inhibit --list shows no 'GPU lent to VM gpu-vm' while the VM runs" inhibited || {
		systemd-inhibit --list --no-pager 2>&1 | sed 's/^/  inhibitors: /' >&9
		return 1
	}
	say "inhibitor while the VM runs: $(inhibitor | tr -s ' ')"
	need "lightdm not active again within 60 s" wait_for 60 unit_is lightdm.service active || return 1
	j=$(journalctl -q --no-pager -o cat -u "$UNIT")
	# shellcheck disable=SC2016 # $1 is the inner sh's argument
	need "the detach's journal shows no display manager stop" sh -c 'echo "$1" | grep -iE "stop.*(lightdm|display-manager)"' - "$j" || return 1
	# shellcheck disable=SC2016 # $1 is the inner sh's argument
	need "the detach's journal shows no display manager start" sh -c 'echo "$1" | grep -iE "start.*(lightdm|display-manager)"' - "$j" || return 1
	# shellcheck disable=SC2016 # $1 is the inner sh's argument
	need "the detach's journal says the sleep inhibitor was not taken" sh -c '! echo "$1" | grep -q "sleep stays allowed"' - "$j" || return 1
	t0=$(now_ms)
	virsh destroy gpu-vm >/tmp/destroy.out 2>&1
	rc=$?
	t1=$(now_ms)
	say "TIMING virsh_destroy_ms $((t1 - t0)) exit $rc"
	[ $rc = 0 ] || { why="virsh destroy exit $rc: $(tr '\n' ' ' </tmp/destroy.out)"; return 1; }
	need "$UNIT not inactive within 120 s of destroy ($(systemctl is-active "$UNIT"))" \
		wait_for 120 unit_is "$UNIT" inactive || { journal "$UNIT"; return 1; }
	t2=$(now_ms)
	need "functions not back on bochs-drm and snd_hda_intel within 60 s" wait_for 60 home || { journal "$UNIT"; return 1; }
	say "TIMING destroy_to_home_ms $(($(now_ms) - t0)) (unit inactive after $((t2 - t0)) ms)"
	journal "$UNIT"
	need "the sleep inhibitor is still listed after virsh destroy: $(inhibitor)" not_inhibited || return 1
	need "lightdm not active after the reattach" wait_for 60 unit_is lightdm.service active || return 1
	need "domain not shut off" domstate_is gpu-vm "shut off"
}

failed_start_rolls_back() {
	# A failed first scenario may leave gpu-vm running.
	if ! domstate_is gpu-vm "shut off"; then
		virsh destroy gpu-vm >/dev/null 2>&1
		need "gpu-vm still holds the card 60 s after destroy" wait_for 60 home || return 1
	fi
	t0=$(now_ms)
	virsh start gpu-vm-bad >/tmp/bad.out 2>&1
	rc=$?
	say "TIMING virsh_start_bad_ms $(($(now_ms) - t0)) exit $rc"
	sed 's/^/  virsh: /' /tmp/bad.out >&9
	journal "$BAD_UNIT"
	[ $rc != 0 ] || { why="virsh start succeeded"; return 1; }
	need "virsh's error has no pitcrew line" grep -q 'pitcrew: ' /tmp/bad.out || return 1
	need "virsh's error does not say why ($BRIDGE)" grep -q "journalctl -u .*): .*$BRIDGE" /tmp/bad.out || return 1
	need "domain gpu-vm-bad is running" domstate_is gpu-vm-bad "shut off" || return 1
	need "the card left bochs-drm / snd_hda_intel" home || return 1
	need "lightdm not active" wait_for 60 unit_is lightdm.service active || {
		journalctl -q --no-pager -b -u lightdm.service | tail -n 8 | sed 's/^/  lightdm: /' >&9
		return 1
	}
	need "$BAD_UNIT is active" not_active "$BAD_UNIT" || return 1
	# The run's write helper is idle at the end of a rollback: pitcrew ends and reaps it.
	need "a process of pitcrew outlived the failed unit: $(journalctl -q --no-pager -b -o cat -u "$BAD_UNIT" | grep 'remains running')" \
		sh -c "! journalctl -q --no-pager -b -o cat -u '$BAD_UNIT' | grep -q 'remains running after unit stopped'"
}

# `softdep bochs pre: vfio-pci`, the line VFIO guides give for the host driver: kmod's
# `modprobe -r bochs` then removes vfio_pci too once unused. Twice: with vfio_pci not loaded
# (pitcrew loads it beside that unload) and loaded (left by the first lend: the plan has no
# load). Each lend must still end on vfio-pci, and each return at home.
SOFTDEP=/etc/modprobe.d/zz-pitcrew-fulltest-softdep.conf
softdep_lend() {
	before=$(journalctl -q --no-pager -o cat -u "$UNIT" | wc -l)
	virsh start gpu-vm >/tmp/start.out 2>&1
	rc=$?
	j=$(journalctl -q --no-pager -o cat -u "$UNIT" | tail -n "+$((before + 1))")
	echo "$j" | sed "s/^/  journal ($1): /" >&9
	[ $rc = 0 ] || { why="virsh start exit $rc with the softdep, $1: $(tr '\n' ' ' </tmp/start.out)"; return 1; }
	need "not both functions on vfio-pci with the softdep, $1: $(drivers)" lent || return 1
	case $j in
	*"bochs is unloaded, but modprobe -r bochs said"*) softdep_seen="${softdep_seen}$1: modprobe -r bochs exited 1 on vfio_pci in use (loading beside it) after unloading bochs, and the lend went on; " ;;
	*"vfio-pci is gone"*) softdep_seen="${softdep_seen}$1: the unload removed vfio_pci, the binding step loaded it again; " ;;
	*) softdep_seen="${softdep_seen}$1: vfio_pci was not removed; " ;;
	esac
	virsh destroy gpu-vm >/tmp/destroy.out 2>&1 || { why="virsh destroy: $(tr '\n' ' ' </tmp/destroy.out)"; return 1; }
	need "$UNIT not inactive within 120 s of destroy" wait_for 120 unit_is "$UNIT" inactive || return 1
	need "functions not back on bochs-drm and snd_hda_intel within 60 s: $(drivers)" wait_for 60 home || return 1
	need "lightdm not active after the return" wait_for 60 unit_is lightdm.service active
}
softdep_vfio() {
	softdep_seen=
	need "gpu-vm still holds the card 60 s after destroy" settle || return 1
	need "the card is not home before the lend: $(drivers)" home || return 1
	echo "softdep bochs pre: vfio-pci" >"$SOFTDEP"
	modprobe -r vfio_pci
	need "vfio_pci still loaded" sh -c '! grep -q "^vfio_pci " /proc/modules' || return 1
	softdep_lend "vfio_pci not loaded" || return 1
	need "vfio_pci not loaded after the first lend" grep -q "^vfio_pci " /proc/modules || return 1
	softdep_lend "vfio_pci loaded"
}

doctor_verdict() {
	why="exit codes before install / after install / VM defined: $doctor_before_rc/$doctor_after_rc/$doctor_vm_rc, want 1/1/0"
	[ "$doctor_before_rc/$doctor_after_rc/$doctor_vm_rc" = 1/1/0 ] || return 1
	for seen in "$doctor_before" "$doctor_after" "$doctor_vm"; do
		[ "$seen" = ok ] || { why=$seen; return 1; }
	done
}

# shellcheck source=testbed/fullstack/desktop.sh disable=SC1091
. "$HERE/desktop.sh"
# shellcheck source=testbed/fullstack/stuck.sh disable=SC1091
. "$HERE/stuck.sh"

say "full stack: $(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' /etc/os-release), $(uname -r), $(virsh --version 2>&1 | head -n 1 | sed 's/^/libvirt /'), $(drivers)"
if setup; then
	doctor_verdict
	verdict doctor $? "doctor fails before install (hook) and after (VM undefined), passes with the VM defined"
	lend_and_return
	verdict libvirt_lend_and_return $? "virsh start/destroy lent and returned 03.0+03.1, lightdm stopped and back, sleep inhibited exactly while lent"
	failed_start_rolls_back
	verdict libvirt_failed_start_rolls_back $? "virsh start failed with pitcrew's line; card on bochs-drm, lightdm active"
	softdep_vfio
	verdict softdep_vfio $? "softdep bochs pre: vfio-pci: lent and returned twice (${softdep_seen:-})"
	rm -f "$SOFTDEP"
	desktop_scenarios
	# Last: it logs the desktop out and leaves a write helper behind until its holder goes.
	stuck_write_unit
	verdict stuck_write_unit $? "${stuck_summary:-}"
	stuck_write_cleanup
else
	for s in doctor libvirt_lend_and_return libvirt_failed_start_rolls_back softdep_vfio desktop_stays sound_released sound_released_repeat wayland_desktop_stays session_on_the_card stuck_write_unit; do
		say "RESULT $s FAIL setup: $why"
	done
fi
say DONE
sync
poweroff -f
