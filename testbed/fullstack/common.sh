# shellcheck shell=sh
# `why` is read by the caller's verdict.
# shellcheck disable=SC2034
# What every full-stack run script needs (run.sh, gnome_plasma.sh): results on ttyS1, polling
# waits with deadlines, drivers, units and domains. The caller sets PCI and defines `drivers`
# (the state a failed verdict shows).
exec 9>/dev/ttyS1
stty -F /dev/ttyS1 -onlcr 2>/dev/null

say() { echo "$*" >&9; echo "$*"; }
now_ms() { date +%s%3N; }
driver_of() { if [ -e "$PCI/$1/driver" ]; then basename "$(readlink "$PCI/$1/driver")"; else echo none; fi; }
# wait_for SECS CMD...: poll CMD until it succeeds or SECS seconds have passed.
wait_for() {
	limit=$(($(date +%s) + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -ge "$limit" ] && return 1
		sleep 0.2
	done
}
# need REASON CMD...: run CMD; on failure record REASON (why) and return 1.
need() {
	why=$1
	shift
	"$@" >/dev/null 2>&1
}
on() { [ "$(driver_of "$1")" = "$2" ]; }
not_active() { ! systemctl -q is-active "$1"; }
unit_is() { [ "$(systemctl is-active "$1" 2>/dev/null)" = "$2" ]; }
domstate_is() { [ "$(virsh domstate "$1" 2>/dev/null | head -n 1)" = "$2" ]; }
# The unit's journal (monotonic timestamps), one guest line each.
journal() { journalctl -q --no-pager -o short-monotonic -u "$1" | sed 's/^/  journal: /' >&9; }
verdict() {
	if [ "$2" = 0 ]; then
		say "RESULT $1 PASS $3"
	else
		say "RESULT $1 FAIL $why ($(drivers))"
	fi
}
