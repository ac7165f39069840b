# shellcheck shell=sh
# machine: two-gpus
# Holders are found by device number, not by the path they opened. A container given one card
# under another's name (`docker run --device /dev/dri/card1:/dev/dri/card0`) shows that name in
# /proc/<pid>/fd, as does a node made with mknod anywhere. Here one "container" (its own /dev/dri)
# holds the GPU under the other GPU's name, another holds the other GPU under the GPU's name, and
# a third process holds the GPU through /tmp/gpu-alias: detach ends the first and the third and
# leaves the second alone.
card=$(card_of "$GPU")
card2=$(card_of "$GPU2")
{ [ -n "$card" ] && [ -n "$card2" ]; } || fail "precondition: cards '$card' and '$card2'"
devnum() { cat "/sys/class/drm/$1/dev"; }
major=$(devnum "$card" | cut -d: -f1)
minor=$(devnum "$card" | cut -d: -f2)
minor2=$(devnum "$card2" | cut -d: -f2)

# contained NAME MINOR: a process in its own mount namespace holding card MINOR as /dev/dri/NAME.
contained() {
	unshare -m sh -c "mount -t tmpfs none /dev/dri && mknod /dev/dri/$1 c $major $2 && exec sleep 100000 3</dev/dri/$1" &
}
contained "$card2" "$minor"
swapped_holder=$!
contained "$card" "$minor2"
swapped_bystander=$!
mknod /tmp/gpu-alias c "$major" "$minor"
sleep 100000 3</tmp/gpu-alias &
aliased=$!
trap 'kill -9 $swapped_holder $swapped_bystander $aliased 2>/dev/null; rm -f /tmp/gpu-alias' EXIT
shows() { [ "$(readlink "/proc/$1/fd/3")" = "$2" ] && [ "$(cat "/proc/$1/comm")" = sleep ]; }
wait_until 5000 shows $swapped_holder "/dev/dri/$card2" ||
	fail "precondition: the contained holder of $card does not show /dev/dri/$card2 (shows '$(readlink /proc/$swapped_holder/fd/3)')"
wait_until 5000 shows $swapped_bystander "/dev/dri/$card" ||
	fail "precondition: the contained holder of $card2 does not show /dev/dri/$card (shows '$(readlink /proc/$swapped_bystander/fd/3)')"
wait_until 5000 shows $aliased /tmp/gpu-alias || fail "precondition: the alias holder does not show /tmp/gpu-alias"

pc_ok status
gpu_section=$(echo "$PC_OUT" | sed -n "/^GPU $GPU/,/^GPU 0000:00:04.0/p")
for pid in $swapped_holder $aliased; do
	echo "$gpu_section" | grep -q "held by pid $pid (sleep) in .*: /dev/dri/$card\$" ||
		fail "status does not list pid $pid as holding /dev/dri/$card under $GPU"
done
echo "$gpu_section" | grep -q "held by pid $swapped_bystander " &&
	fail "status lists pid $swapped_bystander, which holds $card2, under $GPU"

pc_ok detach 00:03.0
for pid in $swapped_holder $aliased; do
	echo "$PC_OUT" | grep -q "end process $pid (sleep) holding /dev/dri/$card" ||
		fail "the plan does not end pid $pid, which holds $card"
	alive "$pid" && fail "pid $pid still holds $card after detach"
done
echo "$PC_OUT" | grep -q "process $swapped_bystander " && fail "the plan names pid $swapped_bystander, which holds $card2"
alive $swapped_bystander || fail "the process holding $card2 (shown as /dev/dri/$card) was ended"
expect_driver "$GPU" vfio-pci "after detach"
expect_driver "$GPU2" bochs-drm "the other GPU"

pc_ok reattach 00:03.0
expect_driver "$GPU" bochs-drm "after reattach"
alive $swapped_bystander || fail "the holder of $card2 was ended by reattach"
pass "holders named by device number: the GPU's holders under $card2's name and under /tmp/gpu-alias ended, $card2's holder under $card's name untouched"
