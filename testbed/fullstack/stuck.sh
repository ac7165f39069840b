# shellcheck shell=sh
# `why` is read by run.sh's verdict.
# shellcheck disable=SC2034
# A write the kernel never returns from, under systemd (issue 7), sourced by run.sh and run last:
# it leaves the machine as a user's would be after it (a function without a driver until its
# holder goes), and it needs the desktop logged out so that the only holder is the hidden one.
#
# The holder of the GPU's sound card is one pitcrew cannot see. A test drop-in gives the unit a
# /proc that shows only what it may ptrace (ProtectProc=invisible, CAP_SYS_PTRACE dropped) and the
# holder runs as nobody, as a process in a container whose /proc pitcrew cannot read would. The
# unbind of snd_hda_intel then waits in the kernel for good. What must hold: the write helper, not
# pitcrew, stays in D state; pitcrew fails the step after step_timeout and rolls back; systemd
# marks the unit failed at once (KillMode=process: it does not wait for the helper) and the hook's
# `virsh start` fails with pitcrew's line long before the hook's own bound would end it.
HIDE_DROPIN=/run/systemd/system/pitcrew@.service.d/50-test-hidden-holder.conf
STUCK_STEP_S=5

d_state_helpers() { ps -eo pid=,stat=,wchan:32=,args= | awk '$2 ~ /^D/ && /pitcrew __write/'; }
audio_unbound() { [ "$(driver_of "$AUDIO")" = none ]; }
held_by_holder() { [ "$(readlink "/proc/$holder/fd/3")" = "/dev/snd/controlC$stuck_card" ]; }
card_free() { ! fuser -s "$CARD"; }

# hidden_holder_setup: the desktop logged out, the drop-in and a short step timeout in place, and
# `nobody` holding the control node of 03.1's sound card (its pid in $holder).
hidden_holder_setup() {
	settle
	log_out || return 1
	need "$CARD still open 30 s after logout" wait_for 30 card_free || return 1
	stuck_card=$(alsa_card)
	[ -n "$stuck_card" ] || { why="$AUDIO has no sound card"; return 1; }
	sound_held && { why="after logout the sound card of 03.1 is still open in $(sound_held_by)"; return 1; }
	mkdir -p "$(dirname "$HIDE_DROPIN")"
	printf '[Service]\nProtectProc=invisible\nCapabilityBoundingSet=~CAP_SYS_PTRACE\n' >"$HIDE_DROPIN"
	need "systemctl daemon-reload failed" systemctl daemon-reload || return 1
	sed -i "/^\[vm\.\(gpu-vm\|\"gpu-vm\"\)\]\$/a step_timeout = $STUCK_STEP_S" /etc/pitcrew/pitcrew.toml
	need "no step_timeout = $STUCK_STEP_S in the config" grep -qx "step_timeout = $STUCK_STEP_S" /etc/pitcrew/pitcrew.toml || return 1
	setpriv --reuid=nobody --regid=nogroup --clear-groups sleep infinity 3<"/dev/snd/controlC$stuck_card" &
	holder=$!
	need "the holder (nobody) does not hold controlC$stuck_card" wait_for 5 held_by_holder
}

stuck_write_unit() {
	hidden_holder_setup || return 1
	t0=$(now_ms)
	virsh start gpu-vm >/tmp/stuck.out 2>&1
	rc=$?
	ms=$(($(now_ms) - t0))
	say "TIMING virsh_start_stuck_ms $ms exit $rc"
	sed 's/^/  virsh: /' /tmp/stuck.out >&9
	journalctl -q --no-pager -o short-monotonic -u "$UNIT" --since "@$((t0 / 1000))" >/tmp/stuck.journal
	sed 's/^/  journal: /' /tmp/stuck.journal >&9
	stuck=$(d_state_helpers)
	say "  in D state: ${stuck:-nothing}"
	[ $rc != 0 ] || { why="virsh start succeeded"; return 1; }
	# Step timeout, rollback and systemd's bookkeeping take a few seconds under TCG; the hook's
	# own bound (unit_timeout + 15 s) is 135 s.
	[ $ms -lt $((STUCK_STEP_S * 1000 + 20000)) ] || { why="virsh start took $ms ms with a ${STUCK_STEP_S} s step timeout"; return 1; }
	# The hook's line carries the reason the unit left: the step, and that the kernel kept it.
	need "virsh's error lacks the hook's 'failed: the GPU stays with the host'" grep -q "pitcrew: .*failed: the GPU stays with the host" /tmp/stuck.out || return 1
	need "virsh's error lacks pitcrew's reason (unbind ... did not return within ${STUCK_STEP_S}s)" \
		grep -q "unbind it from snd_hda_intel) failed: .*did not return within ${STUCK_STEP_S}s" /tmp/stuck.out || return 1
	need "$UNIT is $(systemctl is-active "$UNIT"), not failed" unit_is "$UNIT" failed || return 1
	result=$(systemctl show -p Result --value "$UNIT")
	[ "$result" = exit-code ] || { why="$UNIT failed with Result=$result, not exit-code (pitcrew's own exit)"; return 1; }
	for want in "unbind it from snd_hda_intel) failed" "did not return within ${STUCK_STEP_S}s (helper pid" \
		"no process pitcrew can see holds a node of $AUDIO" "Rolled back everything else"; do
		grep -qF "$want" /tmp/stuck.journal || { why="the unit's journal lacks \"$want\""; return 1; }
	done
	helper=$(echo "$stuck" | awk 'NR == 1 {print $1}')
	[ -n "$helper" ] || { why="no pitcrew write helper in D state"; return 1; }
	need "the D-state helper $helper is not in $UNIT's cgroup" grep -q "^0::.*/pitcrew@gpu\\\\x2dvm.service\$" "/proc/$helper/cgroup" || return 1
	pgrep -f "pitcrew detach" >/dev/null && { why="a pitcrew detach still runs: $(pgrep -af 'pitcrew detach')"; return 1; }
	need "03.0 not rolled back to bochs-drm" on "$GPU" bochs-drm || return 1
	need "the sleep inhibitor outlived the failed detach: $(inhibitor)" not_inhibited || return 1
	wchan=$(echo "$stuck" | awk 'NR == 1 {print $3}')
	# Once the holder goes, the kernel finishes the unbind and a reattach gives the audio back.
	kill -9 "$holder"
	need "the stuck unbind did not complete within 30 s of the holder's end" wait_for 30 audio_unbound || return 1
	need "the write helper still waits 30 s after the holder's end" wait_for 30 sh -c "! kill -0 $helper"
	"$HERE/pitcrew" reattach "$GPU" >/tmp/stuck-reattach.out 2>&1 || {
		why="pitcrew reattach $GPU afterwards: $(tail -n 1 /tmp/stuck-reattach.out)"
		return 1
	}
	need "03.0/03.1 not back on bochs-drm/snd_hda_intel after the reattach" wait_for 30 home || return 1
	stuck_summary="virsh start failed after $ms ms (step timeout ${STUCK_STEP_S} s) naming the stuck unbind; $UNIT failed (exit-code) while the helper waited in $wchan inside its cgroup; 03.0 rolled back; audio back after the holder left"
}

stuck_write_cleanup() {
	[ -n "${holder:-}" ] && kill -9 "$holder" 2>/dev/null
	rm -f "$HIDE_DROPIN"
	systemctl daemon-reload
}
