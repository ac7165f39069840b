# shellcheck shell=sh
# `why` is read by run.sh's verdict.
# shellcheck disable=SC2034
# The desktop scenarios, sourced by run.sh after the display-manager path (its helpers: say,
# need, wait_for, on, home, lent, journal, verdict). LightDM logs the user `pc` in automatically
# (openbox under Xorg, or sway); PipeWire, WirePlumber and pipewire-pulse run in the session.
# `pitcrew keep-off` keeps the session off the GPU 03.0; lending it must not touch the session.
USER_NAME=pc
AUTOLOGIN=/etc/lightdm/lightdm.conf.d/50-pitcrew-autologin.conf

alsa_card() {
	for c in "$PCI/$AUDIO"/sound/card*; do
		[ -e "$c" ] && echo "${c##*/card}" && return
	done
}
sound_nodes() {
	n=$(alsa_card)
	[ -n "$n" ] && echo /dev/snd/controlC"$n" /dev/snd/pcmC"$n"D*
}
# The card's nodes are several words on purpose.
# shellcheck disable=SC2086
sound_held() { nodes=$(sound_nodes) && [ -n "$nodes" ] && fuser -s $nodes; }
# shellcheck disable=SC2086
sound_held_by() { nodes=$(sound_nodes) && [ -n "$nodes" ] && fuser -v $nodes 2>&1 | awk 'NR>1 {print $NF}' | sort -u | tr '\n' ' '; }
user_gone() { ! pgrep -u "$USER_NAME" >/dev/null; }
running() { pgrep -u "$USER_NAME" -x "$1" >/dev/null; }
card_held_by() {
	pid=$(pgrep -x "$1" | head -n 1)
	[ -n "$pid" ] || return 1
	node=$(readlink -f "$CARD")
	for fd in /proc/"$pid"/fd/*; do
		[ "$(readlink "$fd")" = "$node" ] && return 0
	done
	return 1
}
# The PIDs that must survive a lend: the display manager, its display server, the session's
# window manager or compositor, the sound server and its session manager.
session_pids() {
	echo "lightdm=$(systemctl show -p MainPID --value lightdm.service) $1=$(pgrep -x "$1" | head -n 1)" \
		"$2=$(pgrep -u "$USER_NAME" -x "$2" | head -n 1)" \
		"pipewire=$(pgrep -u "$USER_NAME" -x pipewire | head -n 1)" \
		"wireplumber=$(pgrep -u "$USER_NAME" -x wireplumber | head -n 1)"
}

# What the session said, for a failure's reason.
session_log() {
	for f in /home/$USER_NAME/.xsession-errors /tmp/sway.log; do
		[ -s "$f" ] && tail -n 12 "$f" | sed "s|^|  $(basename "$f"): |" >&9
	done
	journalctl -q --no-pager -b _UID="$(id -u "$USER_NAME")" | tail -n 12 | sed 's/^/  user journal: /' >&9
}

# log_out: the display manager and the user's manager stopped, none of the user's processes
# left, and no keep-off rule for 03.0.
log_out() {
	systemctl stop lightdm.service
	systemctl stop "user@$(id -u "$USER_NAME").service" 2>/dev/null
	need "the user's processes still run 30 s after logout" wait_for 30 user_gone || return 1
	[ -e /etc/udev/rules.d/73-pitcrew-keep-off.rules ] && "$HERE/pitcrew" keep-off --undo "$GPU" >/dev/null 2>&1
	return 0
}
# autologin_into SESSION: the session LightDM logs the user into at its next start.
autologin_into() { sed -i "s/^autologin-session=.*/autologin-session=$1/" "$AUTOLOGIN"; }

# fresh_session SESSION KEEP-OFF-ARGS...: log out, run keep-off on 03.0 while nothing of the
# desktop holds it, log in to SESSION.
fresh_session() {
	session=$1
	shift
	# Each scenario starts from no rules, so keep-off applies every part it is asked for.
	log_out || return 1
	"$HERE/pitcrew" keep-off "$@" "$GPU" >/tmp/keepoff.out 2>&1 || {
		why="pitcrew keep-off $* failed: $(tr '\n' ' ' </tmp/keepoff.out)"
		return 1
	}
	sed 's/^/  keep-off: /' /tmp/keepoff.out >&9
	autologin_into "$session"
	t0=$(now_ms)
	systemctl start lightdm.service
	need "$SERVER not running within 180 s of the login" wait_for 180 pgrep -x "$SERVER" || { session_log; return 1; }
	need "$SHELL_PROC of $USER_NAME not running within 120 s" wait_for 120 running "$SHELL_PROC" || { session_log; return 1; }
	need "wireplumber of $USER_NAME not running within 60 s" wait_for 60 running wireplumber || { session_log; return 1; }
	say "TIMING login_${SHELL_PROC}_ms $(($(now_ms) - t0))"
}

# lend_keeping_session NAME: virsh start/destroy while the session runs; the PIDs must stay.
lend_keeping_session() {
	before=$(session_pids "$SERVER" "$SHELL_PROC")
	say "  $1: before the lend: $before"
	case "$before" in *=\ * | *=) why="not every process of the desktop runs: $before"; session_log; return 1 ;; esac
	t0=$(now_ms)
	lend_t0=$t0
	virsh start gpu-vm >/tmp/start.out 2>&1
	rc=$?
	say "TIMING virsh_start_${1}_ms $(($(now_ms) - t0)) exit $rc"
	journal "$UNIT"
	[ $rc = 0 ] || { why="virsh start exit $rc: $(tr '\n' ' ' </tmp/start.out)"; return 1; }
	need "not both functions on vfio-pci" lent || return 1
	j=$(journalctl -q --no-pager -o cat -u "$UNIT" --since "@$((t0 / 1000))")
	if echo "$j" | grep -qiE "(stop|start) .*(lightdm|display-manager)"; then
		why="the detach stopped or started the display manager"
		return 1
	fi
	during=$(session_pids "$SERVER" "$SHELL_PROC")
	[ "$during" = "$before" ] || { why="PIDs changed at the lend: $before -> $during"; return 1; }
	seats=$(loginctl list-seats --no-legend | awk '{print $1}' | tr '\n' ' ')
	[ "$seats" = "seat0 " ] || { why="seats now: $seats"; return 1; }
	t0=$(now_ms)
	virsh destroy gpu-vm >/tmp/destroy.out 2>&1 || { why="virsh destroy: $(tr '\n' ' ' </tmp/destroy.out)"; return 1; }
	need "functions not back on bochs-drm and snd_hda_intel within 60 s" wait_for 60 home || return 1
	need "$UNIT not inactive within 60 s" wait_for 60 unit_is "$UNIT" inactive || return 1
	say "TIMING destroy_to_home_${1}_ms $(($(now_ms) - t0))"
	after=$(session_pids "$SERVER" "$SHELL_PROC")
	[ "$after" = "$before" ] || { why="PIDs changed by the return: $before -> $after"; return 1; }
}

desktop_stays() {
	SERVER=Xorg SHELL_PROC=openbox
	fresh_session pitcrew-x || return 1
	need "keep-off did not apply the DRM rule at once" grep -q "from now on the desktop leaves it alone" /tmp/keepoff.out || return 1
	need "keep-off did not apply the sound rule at once" grep -q "PipeWire and PulseAudio leave it alone" /tmp/keepoff.out || return 1
	"$HERE/pitcrew" status >/tmp/status.out 2>&1
	sed -n '/GPU 0000:00:03.0/,/^GPU\|^Display/p' /tmp/status.out | sed 's/^/  status: /' >&9
	need "status does not say the desktop leaves 03.0 alone" grep -q "keep-off.rules): the desktop leaves it alone" /tmp/status.out || return 1
	card_held_by Xorg && { why="Xorg opened $CARD despite keep-off"; return 1; }
	sound_held && { why="the sound card of 03.1 is open in $(sound_held_by)"; return 1; }
	lend_keeping_session kept || return 1
	card_held_by Xorg && { why="Xorg took $CARD when it came back"; return 1; }
	# Xorg logs every GPU removal, seat or not; any other line naming the card means it used it.
	if grep "$(readlink -f "$CARD")" /var/log/Xorg.0.log | grep -qv "removing GPU device"; then
		grep -n "$(readlink -f "$CARD")" /var/log/Xorg.0.log | head -n 8 | sed 's/^/  Xorg.0.log: /' >&9
		why="Xorg.0.log shows Xorg using $(readlink -f "$CARD")"
		return 1
	fi
	need "the X session no longer answers" env DISPLAY=:0 XAUTHORITY=/var/run/lightdm/root/:0 xdpyinfo
}

sound_released() {
	SERVER=Xorg SHELL_PROC=openbox
	fresh_session pitcrew-x --keep-sound || return 1
	need "keep-off did not apply the DRM rule at once" grep -q "from now on the desktop leaves it alone" /tmp/keepoff.out || return 1
	need "WirePlumber/PipeWire never opened ALSA card $(alsa_card) of 03.1 within 60 s" wait_for 60 sound_held || return 1
	say "  sound card $(alsa_card) of 03.1 open in: $(sound_held_by)"
	lend_keeping_session sound || return 1
	journalctl -q --no-pager -o cat -u "$UNIT" --since "@$((lend_t0 / 1000))" >/tmp/lend.journal
	need "the detach did not ask for the sound card through the reservation" grep -q "ReserveDevice1.Audio" /tmp/lend.journal || return 1
	need "the sound server did not release the card through the reservation" grep -q "released the card" /tmp/lend.journal || return 1
	need "the sound server did not take ALSA card $(alsa_card) back within 60 s" wait_for 60 sound_held || return 1
	say "  after the return, sound card $(alsa_card) open in: $(sound_held_by)"
}

# sound_released, again and again in the session it left: every lend must have the sound
# server release the card through the reservation and keep its PID (the race this guards against
# ended WirePlumber in about one lend in three on Debian 13), every return must see it take the
# card back. A lend where it opened the card again and was asked again is counted, not failed.
SOUND_LENDS=20
sound_released_repeat() {
	SERVER=Xorg SHELL_PROC=openbox
	before=$(session_pids "$SERVER" "$SHELL_PROC")
	case "$before" in *=\ * | *=) why="not every process of the desktop runs: $before"; return 1 ;; esac
	asked_again=0 i=1 t_start=$(now_ms)
	while [ "$i" -le "$SOUND_LENDS" ]; do
		need "lend $i: the sound server did not hold ALSA card $(alsa_card) of 03.1 within 60 s" wait_for 60 sound_held || return 1
		t0=$(now_ms)
		virsh start gpu-vm >/tmp/start.out 2>&1 || { why="lend $i: virsh start: $(tr '\n' ' ' </tmp/start.out)"; return 1; }
		journalctl -q --no-pager -o cat -u "$UNIT" --since "@$((t0 / 1000))" >/tmp/lend.journal
		need "lend $i: not both functions on vfio-pci" lent || return 1
		during=$(session_pids "$SERVER" "$SHELL_PROC")
		if [ "$during" != "$before" ] || grep -q "ending it" /tmp/lend.journal; then
			sed 's/^/  journal: /' /tmp/lend.journal >&9
			why="lend $i of $SOUND_LENDS: PIDs $before -> $during"
			return 1
		fi
		need "lend $i: the sound server did not release the card through the reservation" grep -q "released the card" /tmp/lend.journal || return 1
		asked_again=$((asked_again + $(grep -c "asking it again through the reservation" /tmp/lend.journal)))
		virsh destroy gpu-vm >/tmp/destroy.out 2>&1 || { why="lend $i: virsh destroy: $(tr '\n' ' ' </tmp/destroy.out)"; return 1; }
		need "lend $i: functions not back on bochs-drm and snd_hda_intel within 60 s" wait_for 60 home || return 1
		need "lend $i: $UNIT not inactive within 60 s" wait_for 60 unit_is "$UNIT" inactive || return 1
		after=$(session_pids "$SERVER" "$SHELL_PROC")
		[ "$after" = "$before" ] || { why="lend $i of $SOUND_LENDS: PIDs changed by the return: $before -> $after"; return 1; }
		i=$((i + 1))
	done
	need "the sound server did not take ALSA card $(alsa_card) back within 60 s of the last return" wait_for 60 sound_held || return 1
	say "TIMING sound_released_repeat_ms $(($(now_ms) - t_start))"
	say "  $SOUND_LENDS lends and returns, the same PIDs throughout ($before); asked again after reopening: $asked_again"
}

wayland_desktop_stays() {
	SERVER=sway SHELL_PROC=swaybar
	fresh_session pitcrew-sway || {
		journalctl -q --no-pager -b -u lightdm.service | tail -n 5 | sed 's/^/  lightdm: /' >&9
		tail -n 15 /var/log/lightdm/*session*.log 2>/dev/null | sed 's/^/  session: /' >&9
		return 1
	}
	card_held_by sway && { why="sway opened $CARD despite keep-off"; return 1; }
	lend_keeping_session wayland || return 1
	card_held_by sway && { why="sway took $CARD when it came back"; return 1; }
	need "sway is gone after the return" running sway || { session_log; return 1; }
}

logind_holds_card() { fuser -v "$(readlink -f "$CARD")" 2>&1 | grep -q systemd-logind; }
logind_state() { systemctl show -p MainPID -p NRestarts --value systemd-logind.service | tr '\n' ' '; }

# A Wayland session on the card being lent: weston draws on 03.0 and took it through logind
# (TakeDevice), so systemd-logind holds it too, as under GNOME or KDE. The lend ends the session
# (display manager stop, then weston) and waits for logind, and for systemd, which keeps logind's
# copies in its file descriptor store, to close the card: neither is ever signalled.
session_on_the_card() {
	log_out || return 1
	autologin_into pitcrew-weston
	systemctl start lightdm.service
	need "weston of $USER_NAME not running within 120 s of the login" wait_for 120 running weston || {
		tail -n 15 /tmp/weston.log 2>/dev/null | sed 's/^/  weston.log: /' >&9
		session_log
		return 1
	}
	need "systemd-logind does not hold $CARD within 60 s of weston's start" wait_for 60 logind_holds_card || {
		fuser -v "$(readlink -f "$CARD")" 2>&1 | sed 's/^/  fuser: /' >&9
		tail -n 15 /tmp/weston.log 2>/dev/null | sed 's/^/  weston.log: /' >&9
		return 1
	}
	say "  session on the card: $(fuser -v "$(readlink -f "$CARD")" 2>&1 | awk 'NR>1 {print $NF}' | sort -u | tr '\n' ' ')"
	# The display manager comes back at the end of the detach: into the X session this time,
	# since the card it would draw on is lent.
	autologin_into pitcrew-x
	before=$(logind_state)
	t0=$(now_ms)
	virsh start gpu-vm >/tmp/start.out 2>&1
	rc=$?
	say "TIMING virsh_start_session_ms $(($(now_ms) - t0)) exit $rc"
	journalctl -q --no-pager -o cat -u "$UNIT" --since "@$((t0 / 1000))" >/tmp/lend.journal
	sed 's/^/  journal: /' /tmp/lend.journal >&9
	[ $rc = 0 ] || { why="virsh start exit $rc: $(tr '\n' ' ' </tmp/start.out)"; return 1; }
	need "not both functions on vfio-pci" lent || return 1
	need "the detach did not wait for systemd-logind" grep -q "wait for systemd-logind (" /tmp/lend.journal || return 1
	# systemd keeps logind's copies in its file descriptor store: PID 1 holds the card as well.
	if grep -q "end process 1 (" /tmp/lend.journal; then
		why="the detach planned to signal PID 1: $(grep -m 1 "end process 1 (" /tmp/lend.journal)"
		return 1
	fi
	after=$(logind_state)
	[ "$after" = "$before" ] || { why="systemd-logind MainPID/NRestarts changed: $before-> $after"; return 1; }
	need "virsh destroy failed" virsh destroy gpu-vm || return 1
	need "functions not back on bochs-drm and snd_hda_intel within 60 s" wait_for 60 home || return 1
	[ "$(logind_state)" = "$before" ] || { why="systemd-logind MainPID/NRestarts changed by the return: $before-> $(logind_state)"; return 1; }
}

# A scenario that failed mid-lend leaves gpu-vm running: give the card back before the next.
settle() {
	domstate_is gpu-vm "shut off" && return
	virsh destroy gpu-vm >/dev/null 2>&1
	wait_for 60 home
}

desktop_scenarios() {
	settle
	sound_released
	verdict sound_released $? "DRM kept off, sound not: WirePlumber's card released through the reservation, session and sound server PIDs kept, card taken back after destroy"
	settle
	sound_released_repeat
	verdict sound_released_repeat $? "$SOUND_LENDS lends in one session: each released through the reservation, no sound server ended, card taken back after each return"
	settle
	desktop_stays
	verdict desktop_stays $? "keep-off before login: virsh start/destroy lent and returned 03.0+03.1; LightDM, Xorg, openbox, PipeWire, WirePlumber kept their PIDs; Xorg never opened the card"
	settle
	wayland_desktop_stays
	verdict wayland_desktop_stays $? "sway (pixman) session kept through lend and return; sway never opened the card"
	settle
	session_on_the_card
	verdict session_on_the_card $? "weston's session on 03.0 (logind holding the card) ended by the lend; systemd-logind waited for, never signalled (same MainPID, no restart)"
}
