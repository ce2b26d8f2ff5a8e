#!/bin/sh
# /init of sfc's test VMs (tests/src/vm): busybox, Debian's kernel, virtio-net. Configured
# entirely from the kernel command line, then a command shell on ttyS1 for the host, and
# SFCVM-READY on the console (ttyS0). Any failure prints SFCVM-FAIL and ends init: the kernel
# panics, reboots (panic=-1), and qemu (-no-reboot) exits.
#
# Parameters (repeatable ones in the order given; see tests/src/vm/spec.rs):
#   sfcvm.hostname=NAME
#   sfcvm.nic=MAC,NAME           rename the NIC with MAC to NAME (before anything else uses it)
#   sfcvm.sysctl=KEY=VALUE       e.g. net.ipv4.ip_forward=1 (all/default ones before the NICs exist)
#   sfcvm.addr=NIC,ADDR/LEN      IPv4 or IPv6
#   sfcvm.neigh=NIC,IPV4,MAC     permanent neighbour (busybox has `arp -s`, no `ip neigh add`)
#   sfcvm.route=PREFIX,NIC[,VIA] `ip route replace`
#   sfcvm.http=PORT,TEXT         httpd on PORT answering TEXT (percent-encoded) at /

export PATH=/sbin:/bin:/usr/sbin:/usr/bin
fail() {
    echo "SFCVM-FAIL: $*"
    exit 1
}
mount -t proc proc /proc && mount -t sysfs sysfs /sys && mount -t devtmpfs devtmpfs /dev ||
    fail "mounting proc, sys and dev"
# Values are never patterns.
set -f

hostname=sfcvm nics= sysctls= addrs= neighs= routes= http=
for p in $(cat /proc/cmdline); do
    v=${p#*=}
    case $p in
    sfcvm.hostname=*) hostname=$v ;;
    sfcvm.nic=*) nics="$nics $v" ;;
    sfcvm.sysctl=*) sysctls="$sysctls $v" ;;
    sfcvm.addr=*) addrs="$addrs $v" ;;
    sfcvm.neigh=*) neighs="$neighs $v" ;;
    sfcvm.route=*) routes="$routes $v" ;;
    sfcvm.http=*) http=$v ;;
    sfcvm.*) fail "unknown parameter $p" ;;
    esac
done
hostname "$hostname"

# KEY=VALUE through /proc/sys, as the namespaces' sysctls are written.
sysctl_set() {
    printf %s "${1#*=}" >"/proc/sys/$(echo "${1%%=*}" | tr . /)"
}
# Before the NICs exist, as a namespace's are written before its interfaces: `default` keys then
# apply to them. Per-interface keys cannot be written yet; all are written again below.
for s in $sysctls; do sysctl_set "$s" 2>/dev/null; done

# Written by the image builder: modules in dependency order.
for m in $(cat /etc/sfcvm/modules); do
    insmod "/lib/modules/$m.ko" || fail "insmod $m"
done

# Each NIC by its MAC, under its name; the driver probes them as it loads (5 s at most).
for n in $nics; do
    mac=${n%%,*} name=${n#*,} dev= i=0
    while [ -z "$dev" ]; do
        for d in $(ls /sys/class/net); do
            [ "$(cat "/sys/class/net/$d/address")" = "$mac" ] && dev=$d
        done
        [ -n "$dev" ] && break
        i=$((i + 1))
        [ $i -le 50 ] || fail "no NIC with MAC $mac"
        usleep 100000
    done
    [ "$dev" = "$name" ] || ip link set dev "$dev" name "$name" || fail "renaming $dev ($mac) to $name"
done
for s in $sysctls; do sysctl_set "$s" || fail "sysctl $s"; done
for a in $addrs; do
    ip addr add "${a#*,}" dev "${a%%,*}" || fail "address $a"
done
ip link set dev lo up || fail "raising lo"
for n in $nics; do
    ip link set dev "${n#*,}" up || fail "raising ${n#*,}"
done
for n in $neighs; do
    set -- $(echo "$n" | tr , ' ')
    arp -i "$1" -s "$2" "$3" || fail "neighbour $n"
done
for r in $routes; do
    set -- $(echo "$r" | tr , ' ')
    ip route replace "$1" dev "$2" ${3:+via "$3"} || fail "route $r"
done
if [ -n "$http" ]; then
    mkdir -p /www && httpd -d "${http#*,}" >/www/index.html && httpd -p "${http%%,*}" -h /www || fail "httpd $http"
fi

# The host's command shell (tests/src/vm.rs, Vm::exec): raw, no echo; commands read through a
# pipe, so the shell is not interactive (no prompt, no line editing). `dd bs=1`, not `cat`:
# busybox cat holds a command back until the next one arrives. The tty is opened before the
# marker is made: from then on what the host sends waits in its buffer.
mkdir -p /run
stty -F /dev/ttyS1 raw -echo || fail "no ttyS1 for the command shell"
setsid sh -c 'exec </dev/ttyS1 >/dev/ttyS1 2>&1; touch /run/sfcvm-shell; dd bs=1 2>/dev/null | sh' &
i=0
until [ -e /run/sfcvm-shell ]; do
    i=$((i + 1))
    [ $i -le 500 ] || fail "the command shell did not start"
    usleep 10000
done

echo SFCVM-READY
while :; do sleep 3600; done
