# shellcheck shell=sh
# machine: two-gpus
# Processes holding the GPU's /dev/dri card: one that obeys SIGTERM ends by TERM, one that ignores
# it is killed after the deadline; a process holding the other GPU's card is untouched.
DEADLINE_MS=1500
card=$(card_of "$GPU")
card2=$(card_of "$GPU2")
{ [ -n "$card" ] && [ -n "$card2" ]; } || fail "precondition: cards '$card' and '$card2'"

sleep 100000 3<"/dev/dri/$card" &
polite=$!
sh -c 'trap "" TERM; exec sleep 100000' 3<"/dev/dri/$card" &
stubborn=$!
sleep 100000 3<"/dev/dri/$card2" &
bystander=$!
trap 'kill -9 $polite $stubborn $bystander 2>/dev/null' EXIT
holds() { [ "$(readlink "/proc/$1/fd/3")" = "/dev/dri/$2" ]; }
stubborn_ready() { holds $stubborn "$card" && [ "$(cat /proc/$stubborn/comm)" = sleep ]; }
wait_until 5000 holds $polite "$card" || fail "precondition: the polite holder does not hold $card"
wait_until 5000 stubborn_ready || fail "precondition: the stubborn holder does not hold $card"
wait_until 5000 holds $bystander "$card2" || fail "precondition: the bystander does not hold $card2"

pc_ok detach --term-timeout $((DEADLINE_MS / 1000)).$((DEADLINE_MS % 1000 / 100)) 00:03.0
detach_ms=$PC_MS
alive $polite && fail "the holder that obeys TERM is still alive after detach"
alive $stubborn && fail "the holder that ignores TERM is still alive after detach"
wait $polite
st=$?
[ $st = 143 ] || fail "the polite holder ended with status $st, expected 143 (SIGTERM)"
wait $stubborn
st=$?
[ $st = 137 ] || fail "the stubborn holder ended with status $st, expected 137 (SIGKILL)"
ms=${detach_ms%.*}
[ "$ms" -ge $((DEADLINE_MS - 100)) ] ||
	fail "detach took $detach_ms ms: SIGKILL came before the ${DEADLINE_MS} ms TERM deadline"
# The rest of the detach takes well under a second here; the default deadline is 5 s.
[ "$ms" -lt $((DEADLINE_MS + 3000)) ] ||
	fail "detach took $detach_ms ms: --term-timeout of $DEADLINE_MS ms was not honoured"
alive $bystander || fail "the process holding the other GPU ($card2) was ended"
holds $bystander "$card2" || fail "the bystander no longer holds $card2"
expect_driver "$GPU" vfio-pci "after detach"
expect_driver "$AUDIO" vfio-pci "after detach"
expect_driver "$GPU2" bochs-drm "the other GPU"

pc_ok reattach 00:03.0
expect_driver "$GPU" bochs-drm "after reattach"
alive $bystander || fail "the bystander was ended by reattach"
pass "TERM ended one holder, KILL the TERM-ignoring one after the deadline (detach $detach_ms ms); the $card2 holder untouched"
