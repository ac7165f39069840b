# shellcheck shell=sh
# machine: one-gpu
# A detach run from a terminal of the desktop it stops loses that terminal half-way, and the
# kernel sends it SIGHUP: the handover must run to its end, not stop between two steps. Here
# the hangup arrives while the detach waits for a holder that ignores SIGTERM (term-timeout 3 s).
card=$(card_of "$GPU")
[ -n "$card" ] || fail "precondition: $GPU has no DRM card"
sh -c 'trap "" TERM; exec sleep 100000' 3<"/dev/dri/$card" &
holder=$!
trap 'kill -9 $holder 2>/dev/null' EXIT
ready() { [ "$(readlink "/proc/$holder/fd/3")" = "/dev/dri/$card" ] && [ "$(cat "/proc/$holder/comm")" = sleep ]; }
wait_until 5000 ready || fail "precondition: the holder does not hold $card"

rm -f /run/pitcrew/state.json
pc_start detach --term-timeout 3 00:03.0
# The state record is written as the run starts, before its first step (ending the holder).
started() { grep -q "$GPU" /run/pitcrew/state.json 2>/dev/null; }
wait_until 3000 started || fail "no state record naming $GPU within 3 s of the detach's start"
kill -HUP "$PC_PID"
pc_wait 30000 || fail "pitcrew detach still runs 30 s after the hangup"
[ "$PC_RC" = 0 ] || fail "pitcrew detach exited $PC_RC after SIGHUP (129 is the hangup's default end): $(echo "$PC_OUT" | tail -n 1)"
alive $holder && fail "the holder is still alive after detach"
expect_driver "$GPU" vfio-pci "after the detach that got SIGHUP"
expect_driver "$AUDIO" vfio-pci "after the detach that got SIGHUP"
pc_ok reattach 00:03.0
expect_driver "$GPU" bochs-drm "after reattach"
pass "SIGHUP during the holder's TERM wait: detach finished (exit 0 after $PC_MS ms), both functions on vfio-pci; reattach brought them back"
