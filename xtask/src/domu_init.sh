#!/bin/sh
# /init of the dom0 that `xtask` boots to run example kernels as Xen PV domUs (see
# xtask/src/domu.rs). Everything here comes from Debian's packages: busybox-static, Xen's
# utilities (xl, xenstored, xenconsoled, xen-init-dom0) and the kernel's Xen modules.
#
# For each /jobs/N (kernel, params), in order: `xl create -F` the kernel as a PV domU, wait for
# its shutdown (bounded), then send on COM2 (ttyS1, raw):
#   PVMMU-DOMU-BEGIN N <bytes>\n<the domU's console bytes, from xenconsoled's log>
#   \nPVMMU-DOMU-END N reason=<xl's shutdown reason code or none> xl=<exit> t0=<s> t1=<s>\n
# and last `PVMMU-ALL-DONE`. Then QEMU is ended through isa-debug-exit (dom0 has the ports).
# Progress and diagnostics go to the console (hvc0, Xen's COM1), prefixed "pvmmu-dom0:".

/bin/busybox --install -s /bin
export PATH=/bin:/usr/lib/xen-4.17/bin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu
say() { echo "pvmmu-dom0: $*"; }
die() {
    say "FATAL: $*"
    printf 'PVMMU-HOST-FAILED %s\n' "$*" > /dev/ttyS1
    sleep 1
    printf '\021' | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
    poweroff -f
}
up() { cut -d' ' -f1 /proc/uptime; }

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /run/xen /var/run/xen /var/lib/xen /var/log/xen/console /var/lib/xenstored /tmp
mount -t devpts devpts /dev/pts
for m in xen-privcmd xen-evtchn xen-gntdev xen-gntalloc xenfs; do
    insmod "/lib/modules/$m.ko" || die "insmod $m"
done
mount -t xenfs xenfs /proc/xen || die "mount xenfs"
stty -F /dev/ttyS1 raw -echo || die "no COM2 (ttyS1)"
xenstored --pid-file /run/xen/xenstored.pid || die "xenstored"
xen-init-dom0 > /tmp/init-dom0.log 2>&1 || { cat /tmp/init-dom0.log; die "xen-init-dom0"; }
xenconsoled --log=guest --log-dir=/var/log/xen/console || die "xenconsoled"
say "ready at $(up) s"

for job in /jobs/*; do
    [ -f "$job/params" ] || continue
    n=$(basename "$job")
    MEM=64 TIMEOUT=60 ARGS=""
    . "$job/params"
    cat > "/tmp/$n.cfg" <<EOF
name = "pvmmu-$n"
type = "pv"
kernel = "$job/kernel"
memory = $MEM
maxmem = $MEM
vcpus = 1
extra = "$ARGS"
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
EOF
    log="/var/log/xen/console/guest-pvmmu-$n.log"
    t0=$(up)
    timeout -s KILL "$TIMEOUT" xl -vvv create -F "/tmp/$n.cfg" > "/tmp/$n.xl" 2>&1 &
    xlpid=$!
    # The exit gate: when the domU says it waits there, tell the host (on hvc0, which it reads
    # live) the domU's CR3 (a machine address, from xenctx) and where the domain builder put
    # its bootstrap page tables (libxc's log); the host walks the domU's tables in the
    # machine's RAM and opens the gate.
    while kill -0 "$xlpid" 2>/dev/null; do
        if grep -q "pvmmu: at the exit gate" "$log" 2>/dev/null; then
            domid=$(xl domid "pvmmu-$n" 2>/dev/null)
            cr3=$(xenctx -a "$domid" 2>&1 | sed -n 's/.*cr3: *\([0-9a-fA-F]*\).*/\1/p' | head -n 1)
            bt=$(sed -n 's/.*page tables *: .*(pfn 0x\([0-9a-f]*\) + 0x\([0-9a-f]*\) pages).*/\1+\2/p' "/tmp/$n.xl" | head -n 1)
            say "gate $n cr3=${cr3:-none} boot_tables=${bt:-none}"
            break
        fi
        sleep 0.2
    done
    wait "$xlpid"
    rc=$?
    t1=$(up)
    reason=$(sed -n 's/.*has shut down, reason code \([0-9]*\).*/\1/p' "/tmp/$n.xl" | head -n 1)
    [ -n "$reason" ] || reason=none
    xl destroy "pvmmu-$n" > /dev/null 2>&1
    [ -f "$log" ] || : > "$log"
    size=$(stat -c %s "$log")
    say "job $n: shutdown reason $reason, xl exit $rc, $size console bytes, $t0..$t1 s"
    if [ "$reason" = none ]; then
        sed "s/^/pvmmu-dom0: xl: /" "/tmp/$n.xl" | tail -n 30
    fi
    {
        printf 'PVMMU-DOMU-BEGIN %s %s\n' "$n" "$size"
        cat "$log"
        printf '\nPVMMU-DOMU-END %s reason=%s xl=%s t0=%s t1=%s\n' "$n" "$reason" "$rc" "$t0" "$t1"
    } > /dev/ttyS1
done

printf 'PVMMU-ALL-DONE\n' > /dev/ttyS1
say "all jobs done at $(up) s"
sleep 1
printf '\020' | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
poweroff -f
