#!/bin/sh
# The GNOME and KDE Plasma scenarios (cargo xtask full-test --suite trixie --stack gnome-plasma),
# run by the image's pitcrew-fulltest.service at boot, before any display manager: keep-off is
# written first, then GDM logs `pc` into GNOME on Wayland, later SDDM into Plasma on Wayland.
# Both cards are virtio-gpu: 03.0 (with its audio function 03.1) is lent, 04.0 is the desktop's.
# Results on ttyS1 (RESULT / TIMING / free text, then DONE); then the machine powers off.
set -u
HERE=$(dirname "$0")
GPU=0000:00:03.0
AUDIO=0000:00:03.1
DESK=0000:00:04.0
PCI=/sys/bus/pci/devices
USER_NAME=pc
UNIT=$(systemd-escape --template=pitcrew@.service gpu-vm)
# shellcheck source=testbed/fullstack/common.sh disable=SC1091
. "$HERE/common.sh"
home() { on $GPU virtio-pci && on $AUDIO snd_hda_intel; }
lent() { on $GPU vfio-pci && on $AUDIO vfio-pci; }
drivers() { echo "03.0=$(driver_of $GPU) 03.1=$(driver_of $AUDIO)"; }
user_gone() { ! pgrep -u "$USER_NAME" >/dev/null; }
running() { pgrep -u "$USER_NAME" -x "$1" >/dev/null; }
pid_of() { pgrep -u "$USER_NAME" -x "$1" | head -n 1; }
# By command line, for names longer than a comm (gnome-session-binary).
pid_of_cmd() { pgrep -u "$USER_NAME" -f "$1" | head -n 1; }
running_cmd() { pgrep -u "$USER_NAME" -f "$1" >/dev/null; }
# user_unit PROPERTY UNIT: a property of one of the session user's systemd units.
user_unit() {
	runuser -u "$USER_NAME" -- env XDG_RUNTIME_DIR="/run/user/$(id -u "$USER_NAME")" \
		systemctl --user show -p "$1" --value "$2"
}
# The power daemons' units (plasma-powerdevil, org.gnome.SettingsDaemon.Power) and Plasma's
# shell (plasma-plasmashell, TimeoutSec=40sec) are Type=dbus with Restart=on-failure: the unit
# is active once the daemon owns its bus name. Until then a start that outlasts its start
# timeout (easily, under TCG) is killed and started again with a new PID, which says nothing
# about a lend: a PID is taken only from an active unit.
user_unit_active() { [ "$(user_unit ActiveState "$1")" = active ]; }
user_unit_log() {
	say "  $1: $(user_unit ActiveState "$1") pid $(user_unit MainPID "$1"), $(user_unit NRestarts "$1") restarts"
	journalctl -q --no-pager -b _UID="$(id -u "$USER_NAME")" | grep -iE "$2|$1|dumped core" | tail -n 10 | sed 's/^/  user journal: /' >&9
}

# drm_node BDF card|renderD: the function's DRM node now (the number may change at every
# return).
drm_node() {
	for d in "$PCI/$1/drm/$2"[0-9]*; do
		[ -e "$d" ] && echo "/dev/dri/${d##*/}" && return 0
	done
	return 1
}
gpu_back() { drm_node $GPU card >/dev/null && drm_node $GPU renderD >/dev/null; }
# The device number of a node, and the `dev inode` pair /proc/<pid>/maps shows for a mapping
# of it (the node file's own device and inode, in maps' hex major:minor).
rdev() { stat -L -c '%Hr:%Lr' "$1"; }
maps_key() {
	# shellcheck disable=SC2046 # three numbers
	set -- $(stat -c '%Hd %Ld %i' "$1")
	printf '%02x:%02x %s' "$1" "$2" "$3"
}
# pid_holds PID NODE: one of PID's fds is NODE (by device number, never by name).
pid_holds() {
	want=$(rdev "$2") || return 1
	stat -L -c '%Hr:%Lr' /proc/"$1"/fd/* 2>/dev/null | grep -qx "$want"
}
# holders_of_gpu: every process with the lent card's card or render node open or mapped, as
# pid(comm):node.
holders_of_gpu() {
	for n in $(drm_node $GPU card) $(drm_node $GPU renderD); do
		want=$(rdev "$n")
		stat -L -c '%Hr:%Lr %n' /proc/[0-9]*/fd/* 2>/dev/null | awk -v w="$want" '$1 == w {print $2}' |
			cut -d/ -f3 | sort -u | while read -r pid; do
			echo "$pid($(cat /proc/"$pid"/comm 2>/dev/null)):$n:fd"
		done
		grep -l " $(maps_key "$n") " /proc/[0-9]*/maps 2>/dev/null | cut -d/ -f3 | while read -r pid; do
			echo "$pid($(cat /proc/"$pid"/comm 2>/dev/null)):$n:mapped"
		done
	done
}
# open_as_user NODE: the session user's own open() of NODE, read-write; prints the error.
open_as_user() { runuser -u "$USER_NAME" -- sh -c "exec 3<>$1" 2>&1; }
seat_of() { udevadm info -q property -n "$1" | sed -n 's/^ID_SEAT=//p'; }

session_log() {
	journalctl -q --no-pager -b _UID="$(id -u "$USER_NAME")" | tail -n 15 | sed 's/^/  user journal: /' >&9
}
user_session() {
	for s in $(loginctl show-user "$USER_NAME" -p Sessions --value 2>/dev/null); do
		[ "$(loginctl show-session "$s" -p Class --value)" = user ] && echo "$s" && return 0
	done
	return 1
}

setup() {
	need "libvirtd.service not active within 120 s" wait_for 120 unit_is libvirtd.service active || return 1
	need "03.0 and 03.1 not on virtio-pci and snd_hda_intel within 120 s of the boot" wait_for 120 home || return 1
	"$HERE/pitcrew" install --vm gpu-vm >/tmp/install.out 2>&1 || {
		why="pitcrew install failed: $(tail -n 1 /tmp/install.out)"
		return 1
	}
	need "virsh define failed" virsh define "$HERE/gpu-vm.xml" || return 1
}

# kept_off: the keep-off rule for 03.0 written (strict only where render nodes are open to
# everyone) and in effect on its card and render node.
kept_off() {
	grep -q "KERNELS==\"$GPU\"" /etc/udev/rules.d/73-pitcrew-keep-off.rules 2>/dev/null && {
		udevadm settle
		check_seats
		return
	}
	render=$(drm_node $GPU renderD) || {
		why="03.0 has no render node: $(echo "$PCI/$GPU"/drm/*)"
		return 1
	}
	mode=$(stat -c %a "$render")
	# Where everyone may open render nodes (systemd's render mode 0666), taking the session's
	# ACL away keeps nobody out: only strict mode does.
	strict=
	case $mode in *[2367]) strict=--strict ;; esac
	"$HERE/pitcrew" keep-off $strict "$GPU" >/tmp/keepoff.out 2>&1 || {
		why="pitcrew keep-off $strict failed: $(tr '\n' ' ' </tmp/keepoff.out)"
		return 1
	}
	sed 's/^/  keep-off: /' /tmp/keepoff.out >&9
	say "  render nodes are mode $mode: keep-off ${strict:-without --strict}"
	check_seats
}

check_seats() {
	for n in $(drm_node $GPU card) $(drm_node $GPU renderD); do
		[ "$(seat_of "$n")" = seat-pitcrew ] || { why="$n has ID_SEAT '$(seat_of "$n")' with the keep-off rule"; return 1; }
	done
}

# login DM COMPOSITOR SHELL: start DM; its autologin must bring the user's Wayland session up:
# COMPOSITOR on the desktop's card, SHELL running.
login() {
	dm=$1 compositor=$2 shell=$3
	t0=$(now_ms)
	say "  starting $dm"
	timeout 300 systemctl start "$dm" || { why="systemctl start $dm failed or hung for 300 s"; return 1; }
	need "$compositor of $USER_NAME not running within 900 s of starting $dm" wait_for 900 running "$compositor" || {
		journalctl -q --no-pager -b -u "$dm" | tail -n 10 | sed "s/^/  $dm: /" >&9
		session_log
		return 1
	}
	desk=$(drm_node $DESK card)
	need "$compositor did not open the desktop's card $desk within 600 s" wait_for 600 pid_holds "$(pid_of "$compositor")" "$desk" || { session_log; return 1; }
	need "$shell of $USER_NAME not running within 600 s" wait_for 600 running_cmd "$shell" || { session_log; return 1; }
	say "TIMING login_${compositor}_ms $(($(now_ms) - t0))"
	s=$(user_session) || { why="no user session of $USER_NAME in logind"; return 1; }
	type=$(loginctl show-session "$s" -p Type --value)
	[ "$type" = wayland ] || { why="session $s is of type '$type', not wayland"; return 1; }
	say "  session $s: $(loginctl show-session "$s" -p Type -p Seat -p Service | tr '\n' ' ')"
}

log_out() {
	systemctl stop "$1"
	loginctl terminate-user "$USER_NAME" 2>/dev/null
	need "the user's processes still run 60 s after stopping $1" wait_for 60 user_gone
}

# session_pids DM NAME=PROC...: the PIDs that must live through a lend and a return. A name
# starting with + is found by command line, one starting with @ is the user's unit's main PID. Xwayland only when it already runs: GNOME and Plasma
# start it when an X client first needs it.
session_pids() {
	out="dm=$(systemctl show -p MainPID --value "$1")"
	shift
	for spec in "$@"; do
		name=${spec%%=*} proc=${spec#*=}
		case $proc in
		+*) pid=$(pid_of_cmd "${proc#+}") ;;
		@*) pid=$(user_unit MainPID "${proc#@}") ;;
		*) pid=$(pid_of "$proc") ;;
		esac
		out="$out $name=$pid"
	done
	echo "$out"
}

# The lent card's nodes as the session sees them: kept off (seat), out of reach of the user,
# while the desktop's card opens.
out_of_reach() {
	render=$(drm_node $GPU renderD) || { why="03.0 has no render node"; return 1; }
	[ "$(seat_of "$render")" = seat-pitcrew ] || { why="$render has ID_SEAT '$(seat_of "$render")'"; return 1; }
	err=$(open_as_user "$render")
	case $err in
	*"Permission denied"*) ;;
	*) why="$USER_NAME's open() of the lent card's $render: '${err:-it opened}', want EACCES ($(stat -c '%a %U:%G' "$render"), ACL: $(getfacl -cp "$render" 2>/dev/null | tr '\n' ' '))"; return 1 ;;
	esac
	desk=$(drm_node $DESK renderD)
	err=$(open_as_user "$desk")
	[ -z "$err" ] || { why="$USER_NAME cannot open the desktop card's $desk: $err"; return 1; }
}

# desktop_stays LABEL DM SPEC...: lend and return while the session runs, then check what the
# session has of the card that came back.
desktop_stays() {
	label=$1 dm=$2
	shift 2
	out_of_reach || return 1
	held=$(holders_of_gpu)
	[ -z "$held" ] || { why="before the lend, the lent card is held: $held"; return 1; }
	xw=$(pid_of Xwayland)
	before="$(session_pids "$dm" "$@") Xwayland=$xw"
	say "  $label: before the lend: $before"
	case "$before" in *=\ * | *=) case "$before" in *" Xwayland=") ;; *) why="not every process of the desktop runs: $before"; return 1 ;; esac ;; esac
	t0=$(now_ms)
	virsh start gpu-vm >/tmp/start.out 2>&1
	rc=$?
	say "TIMING virsh_start_${label}_ms $(($(now_ms) - t0)) exit $rc"
	journalctl -q --no-pager -o cat -u "$UNIT" --since "@$((t0 / 1000))" >/tmp/lend.journal
	sed 's/^/  journal: /' /tmp/lend.journal >&9
	[ $rc = 0 ] || { why="virsh start exit $rc: $(tr '\n' ' ' </tmp/start.out)"; return 1; }
	need "not both functions on vfio-pci" lent || return 1
	if grep -qiE "(stop|start) .*(gdm|sddm|display-manager)" /tmp/lend.journal; then
		why="the detach stopped or started the display manager"
		return 1
	fi
	during="$(session_pids "$dm" "$@") Xwayland=$xw"
	[ "$during" = "$before" ] || { why="PIDs changed at the lend: $before -> $during"; return 1; }
	[ -z "$xw" ] || [ "$(pid_of Xwayland)" = "$xw" ] || { why="Xwayland $xw gone at the lend"; return 1; }
	seats=$(loginctl list-seats --no-legend | awk '{print $1}' | tr '\n' ' ')
	[ "$seats" = "seat0 " ] || { why="seats while lent: $seats"; return 1; }
	t0=$(now_ms)
	virsh destroy gpu-vm >/tmp/destroy.out 2>&1 || { why="virsh destroy: $(tr '\n' ' ' </tmp/destroy.out)"; return 1; }
	need "functions not back on virtio-pci and snd_hda_intel within 60 s" wait_for 60 home || return 1
	need "$UNIT not inactive within 60 s" wait_for 60 unit_is "$UNIT" inactive || return 1
	need "03.0's DRM nodes not back within 60 s" wait_for 60 gpu_back || return 1
	udevadm settle
	say "TIMING destroy_to_home_${label}_ms $(($(now_ms) - t0)) (nodes now $(drm_node $GPU card) $(drm_node $GPU renderD))"
	after="$(session_pids "$dm" "$@") Xwayland=$xw"
	[ "$after" = "$before" ] || { why="PIDs changed by the return: $before -> $after"; return 1; }
	[ -z "$xw" ] || [ "$(pid_of Xwayland)" = "$xw" ] || { why="Xwayland $xw gone by the return"; return 1; }
	held=$(holders_of_gpu)
	[ -z "$held" ] || { why="after the return, the card's nodes are held: $held"; return 1; }
	seats=$(loginctl list-seats --no-legend | awk '{print $1}' | tr '\n' ' ')
	[ "$seats" = "seat0 " ] || { why="seats after the return: $seats"; return 1; }
	out_of_reach
}

gnome_desktop_stays() {
	login gdm.service gnome-shell gnome-session-binary || return 1
	gsd=org.gnome.SettingsDaemon.Power.service
	need "$gsd of $USER_NAME not active within 300 s" wait_for 300 user_unit_active $gsd || {
		user_unit_log $gsd gsd-power
		return 1
	}
	desktop_stays gnome gdm.service shell=gnome-shell session=+gnome-session-binary power=@$gsd || {
		user_unit_log $gsd gsd-power
		return 1
	}
}

plasma_desktop_stays() {
	login sddm.service kwin_wayland plasmashell || return 1
	for unit in plasma-plasmashell.service plasma-powerdevil.service; do
		need "$unit of $USER_NAME not active within 300 s" wait_for 300 user_unit_active $unit || {
			plasma_units_log
			return 1
		}
	done
	desktop_stays plasma sddm.service kwin=kwin_wayland shell=@plasma-plasmashell.service \
		power=@plasma-powerdevil.service || {
		plasma_units_log
		return 1
	}
}
plasma_units_log() {
	user_unit_log plasma-plasmashell.service plasmashell
	user_unit_log plasma-powerdevil.service powerdevil
}

# The mapper: a process that maps a buffer of the card node and closes its fd (DRM dumb buffer:
# CREATE_DUMB, MAP_DUMB, mmap), then waits with only the mapping (trackfd=False: Python's mmap
# keeps no copy of the fd).
MAPPER='
import fcntl, mmap, os, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
create = bytearray(struct.pack("IIIIIIQ", 64, 64, 32, 0, 0, 0, 0))
fcntl.ioctl(fd, 0xC02064B2, create)
handle, size = struct.unpack("IIIIIIQ", create)[4], struct.unpack("IIIIIIQ", create)[6]
req = bytearray(struct.pack("IIQ", handle, 0, 0))
fcntl.ioctl(fd, 0xC01064B3, req)
m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=struct.unpack("IIQ", req)[2], trackfd=False)
os.close(fd)
open("/tmp/mapper.ready", "w").close()
time.sleep(100000)
'

# With no desktop running and the rule undone: a user's app (the user in the `render` group, as
# many are) opens the lent card's render node and keeps it, and another process maps a buffer of its card
# node and closes the fd. The rule written after them changes nothing for either (access is
# checked at open): status names both, the lend ends both (the holder policy), and the card comes
# back under the rule.
app_on_the_card() {
	"$HERE/pitcrew" keep-off --undo "$GPU" >/tmp/keepoff.out 2>&1 || { why="keep-off --undo: $(tr '\n' ' ' </tmp/keepoff.out)"; return 1; }
	udevadm settle
	render=$(drm_node $GPU renderD) || { why="03.0 has no render node: $(echo "$PCI/$GPU"/drm/*)"; return 1; }
	card=$(drm_node $GPU card)
	runuser -u "$USER_NAME" -g render -- sh -c "exec 3<>$render && exec sleep 100000" >/tmp/app.out 2>&1 &
	rm -f /tmp/mapper.ready
	python3 -c "$MAPPER" "$card" >/tmp/mapper.out 2>&1 &
	need "the app never opened $render within 30 s ($(cat /tmp/app.out))" wait_for 30 pgrep -u "$USER_NAME" -x sleep || return 1
	need "the mapper never mapped $card within 60 s ($(cat /tmp/mapper.out))" wait_for 60 test -e /tmp/mapper.ready || return 1
	app=$(pgrep -u "$USER_NAME" -x sleep | head -n 1)
	mapper=$(pgrep -f "import fcntl, mmap" | head -n 1)
	pid_holds "$app" "$render" || { why="the app $app does not hold $render"; return 1; }
	pid_holds "$mapper" "$card" && { why="the mapper $mapper still has $card open"; return 1; }
	grep -q " $(maps_key "$card") " /proc/"$mapper"/maps || { why="the mapper $mapper has no mapping of $card"; return 1; }
	say "  app $app holds $render, mapper $mapper has $card mapped (fd closed)"
	"$HERE/pitcrew" keep-off "$GPU" >/tmp/keepoff.out 2>&1 || { why="keep-off: $(tr '\n' ' ' </tmp/keepoff.out)"; return 1; }
	sed 's/^/  keep-off: /' /tmp/keepoff.out >&9
	"$HERE/pitcrew" status >/tmp/status.out 2>&1
	sed -n '/GPU 0000:00:03.0/,/^GPU 0000:00:04.0/p' /tmp/status.out | sed 's/^/  status: /' >&9
	need "status does not name the app $app" grep -q "pid $app " /tmp/status.out || return 1
	need "status does not name the mapper $mapper" grep -q "pid $mapper .*mapped" /tmp/status.out || return 1
	t0=$(now_ms)
	virsh start gpu-vm >/tmp/start.out 2>&1
	rc=$?
	say "TIMING virsh_start_app_ms $(($(now_ms) - t0)) exit $rc"
	journalctl -q --no-pager -o cat -u "$UNIT" --since "@$((t0 / 1000))" >/tmp/lend.journal
	sed 's/^/  journal: /' /tmp/lend.journal >&9
	[ $rc = 0 ] || { why="virsh start exit $rc: $(tr '\n' ' ' </tmp/start.out)"; return 1; }
	need "not both functions on vfio-pci" lent || return 1
	[ -d /proc/"$app" ] && { why="the app $app still runs"; return 1; }
	[ -d /proc/"$mapper" ] && { why="the mapper $mapper still runs"; return 1; }
	need "the lend did not end the mapper by the holder policy" grep -q "end process $mapper (python3)" /tmp/lend.journal || return 1
	virsh destroy gpu-vm >/tmp/destroy.out 2>&1 || { why="virsh destroy: $(tr '\n' ' ' </tmp/destroy.out)"; return 1; }
	need "functions not back on virtio-pci and snd_hda_intel within 60 s" wait_for 60 home || return 1
	need "03.0's DRM nodes not back within 60 s" wait_for 60 gpu_back || return 1
	udevadm settle
	check_seats
}

settle() {
	pkill -u "$USER_NAME" -x sleep
	pkill -f "import fcntl, mmap"
	domstate_is gpu-vm "shut off" && return
	virsh destroy gpu-vm >/dev/null 2>&1
	wait_for 60 home
}

say "full stack (GNOME, Plasma): $(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' /etc/os-release), $(uname -r), gnome-shell $(dpkg-query -W -f '${Version}' gnome-shell 2>/dev/null), kwin $(dpkg-query -W -f '${Version}' kwin-wayland 2>/dev/null), $(drivers)"
if setup && kept_off; then
	gnome_desktop_stays
	verdict gnome_desktop_stays $? "keep-off before GDM: GNOME on Wayland kept gdm, gnome-shell, gnome-session, gsd-power (and Xwayland) through lend and return; no display manager step, only seat0; the card's new nodes held by nobody, out of the user's reach"
	settle
	log_out gdm.service
	plasma_desktop_stays
	verdict plasma_desktop_stays $? "keep-off before SDDM: Plasma on Wayland kept sddm, kwin_wayland, plasmashell, powerdevil (and Xwayland) through lend and return; no display manager step, only seat0; the card's new nodes held by nobody, out of the user's reach"
	settle
	log_out sddm.service
	app_on_the_card
	verdict app_on_the_card $? "with no desktop running and no rule, an app that opened the render node and a process with only a mapping of the card node; the rule written after them: status named both, the lend ended both, the card came back under the rule"
else
	for s in gnome_desktop_stays plasma_desktop_stays app_on_the_card; do
		say "RESULT $s FAIL setup: $why"
	done
fi
say DONE
sync
poweroff -f
