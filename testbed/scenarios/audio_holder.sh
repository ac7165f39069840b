# shellcheck shell=sh
# machine: one-gpu
# A process holds the GPU's HDMI sound card (control and PCM nodes), as PipeWire and PulseAudio
# do for every card: detach ends it like any holder before unbinding snd_hda_intel (which would
# wait for it for good), both functions reach vfio-pci, nothing is left in D state, and the
# reattach brings the sound card back.
short_steps 5
wait_until 10000 has_sound_card "$AUDIO" ||
	fail "precondition: $AUDIO has no sound card (is the hda-duplex codec there?)"
card=$(sound_card_of "$AUDIO")
n=${card#card}
pcm=$(pcm_of "$n")
{ [ -c "/dev/snd/controlC$n" ] && [ -n "$pcm" ]; } ||
	fail "precondition: no control/PCM node for $card: $(names /dev/snd)"

sleep 100000 3<"/dev/snd/controlC$n" 4<"/dev/snd/$pcm" &
holder=$!
trap 'kill -9 $holder 2>/dev/null' EXIT
# Both nodes open and sleep exec'd (until then the forked shell is called init).
ready() {
	[ "$(readlink "/proc/$holder/fd/3")" = "/dev/snd/controlC$n" ] &&
		[ "$(readlink "/proc/$holder/fd/4")" = "/dev/snd/$pcm" ] &&
		[ "$(cat "/proc/$holder/comm")" = sleep ]
}
wait_until 5000 ready || fail "precondition: the holder does not hold controlC$n and $pcm"

pc_start detach 00:03.0
if ! pc_wait 60000; then
	kill -9 $holder
	pc_wait 30000
	fail "pitcrew detach was still running 60 s later (stuck behind the $card holder); exit $PC_RC once it was killed: $(echo "$PC_OUT" | tail -n 1)"
fi
[ "$PC_RC" = 0 ] || fail "pitcrew detach exited $PC_RC: $(echo "$PC_OUT" | tail -n 1)"
echo "$PC_OUT" | grep -q "end process $holder (sleep) holding /dev/snd/controlC$n, /dev/snd/$pcm" ||
	fail "the plan does not end the sound card's holder $holder"
alive $holder && fail "the holder of $card is still alive after detach"
wait $holder
st=$?
[ $st = 143 ] || fail "the holder ended with status $st, expected 143 (SIGTERM)"
expect_driver "$GPU" vfio-pci "after detach"
expect_driver "$AUDIO" vfio-pci "after detach"
stuck=$(d_state)
[ -z "$stuck" ] || fail "processes left in D state: $stuck"

pc_ok reattach 00:03.0
expect_driver "$AUDIO" snd_hda_intel "after reattach"
wait_until 10000 has_sound_card "$AUDIO" || fail "no sound card on $AUDIO after reattach"
card=$(sound_card_of "$AUDIO")
wait_until 5000 [ -c "/dev/snd/controlC${card#card}" ] || fail "no /dev/snd/controlC${card#card} after reattach"
pass "the $card holder ended by TERM before the unbind (detach $PC_MS ms), both functions on vfio-pci, no D state; $card back after reattach"
