# shellcheck shell=sh
# machine: one-gpu
# A write the kernel never returns from must not take pitcrew with it. The sound card's holder
# lives outside the PID namespace pitcrew runs in (as a holder in a container would), so pitcrew
# cannot see it and the unbind of snd_hda_intel waits for good: pitcrew reports the step, the
# device and where its write helper waits (wchan), rolls the GPU back, never writes to the audio
# function again and exits 1 within the step timeout; the helper, not pitcrew, stays in D state.
# Once the holder is gone the unbind completes and a reattach gives the function back.
# (The kernel drops the driver link before remove() starts waiting, so the audio function shows
# no driver meanwhile.)
STEP_S=3
short_steps $STEP_S
wait_until 10000 has_sound_card "$AUDIO" ||
	fail "precondition: $AUDIO has no sound card (is the hda-duplex codec there?)"
card=$(sound_card_of "$AUDIO")
n=${card#card}
sleep 100000 3<"/dev/snd/controlC$n" &
holder=$!
trap 'kill -9 $holder 2>/dev/null' EXIT
holds() { [ "$(readlink "/proc/$holder/fd/3")" = "/dev/snd/controlC$n" ]; }
wait_until 5000 holds || fail "precondition: the holder does not hold controlC$n"

# pitcrew is not the namespace's init: when init exits the kernel waits for every process of
# the namespace, the stuck helper included, and that wait is not pitcrew's.
rm -f /tmp/pc.rc
log "\$ unshare -p -f -m --mount-proc sh -c 'pitcrew detach 00:03.0'"
t0=$(now_us)
unshare -p -f -m --mount-proc sh -c 'pitcrew detach 00:03.0 >/tmp/pc.out 2>&1; echo $? >/tmp/pc.rc' &
ns=$!
if ! wait_until $(((STEP_S + 30) * 1000)) [ -s /tmp/pc.rc ]; then
	inside=$(d_state)
	kill -9 $holder
	wait_until 30000 [ -s /tmp/pc.rc ]
	sed 's/^/    /' /tmp/pc.out
	fail "pitcrew did not exit within $((STEP_S + 30)) s of a stuck unbind (in D state then: $inside); it exited $(cat /tmp/pc.rc 2>/dev/null) once the holder was killed"
fi
ms=$(us_to_ms $(($(now_us) - t0)))
rc=$(cat /tmp/pc.rc)
out=$(cat /tmp/pc.out)
sed 's/^/    /' /tmp/pc.out
log "exit $rc after $ms ms"
[ "$rc" = 1 ] || fail "detach exited $rc, expected 1: $(echo "$out" | tail -n 1)"
for want in "unbind it from snd_hda_intel) failed" "did not return within ${STEP_S}s (helper pid" \
	"no process pitcrew can see holds a node of $AUDIO" "pitcrew does not touch $AUDIO again" \
	"Rolled back everything else"; do
	echo "$out" | grep -qF "$want" || fail "the report lacks \"$want\": $(echo "$out" | tail -n 1)"
done
wchan=$(echo "$out" | sed -n 's/.*helper pid [0-9]* waits in \([^)]*\)).*/\1/p' | head -n 1)
stuck=$(d_state)
echo "$stuck" | grep -q " (pitcrew)" || fail "no pitcrew helper in D state (D: '$stuck')"
expect_driver "$GPU" bochs-drm "rolled back"
[ "$(cat "$PCI/$GPU/driver_override")" = "(null)" ] || fail "$GPU kept driver_override=$(cat "$PCI/$GPU/driver_override")"
# Nothing here reads $AUDIO's attributes while the unbind is under way: even a read of its
# driver_override would wait on the device lock the stuck unbind holds.

kill -9 $holder
wait $holder 2>/dev/null
audio_unbound() { [ "$(driver_of "$AUDIO")" = none ]; }
wait_until 10000 audio_unbound || fail "the stuck unbind did not complete once the holder was gone"
wait_until 10000 [ -s /tmp/pc.rc ] && wait $ns
pc_ok reattach 00:03.0
expect_driver "$AUDIO" snd_hda_intel "after reattach"
expect_driver "$GPU" bochs-drm "after reattach"
pass "detach exited 1 after $ms ms (step timeout ${STEP_S} s) with the helper waiting in $wchan; GPU rolled back, $AUDIO untouched until the holder left, then given back"
