# shellcheck shell=bash
# What both PID 1s of a scripts/vm-run guest share (scripts/guest/init, and
# scripts/guest/systemd under systemd): the virtio ports, the launch of the
# command, and its result in the per-run share. Sourced; expects SHARE (the
# per-run share's mount point) and the variables of $SHARE/config.

# The device node of the virtio port named $1 (vm.stdout, vm.stderr, ...):
# devtmpfs has /dev/vportNpM, sysfs has the name.
port() {
	local p
	for p in /sys/class/virtio-ports/*; do
		[[ $(<"$p/name") == "$1" ]] && { echo "/dev/${p##*/}"; return 0; }
	done
	return 1
}

# guest_cmd PATH [NAME=VALUE...]: run the command of this run ($SHARE/cmd)
# in a clean environment (PATH, root's, the VM_* variables of the config
# and NAME=VALUE), stdin /dev/null, output on fds 8 and 9 (the vm.stdout
# and vm.stderr ports); returns its status.
guest_cmd() {
	local path=$1
	shift
	env -i PATH="$path" HOME=/root USER=root LOGNAME=root SHELL=/bin/bash \
		LANG=C.UTF-8 VM_GUEST=1 VM_DISKS="${VM_DISKS:-}" VM_KERNEL="${VM_KERNEL:-}" \
		VM_HOST_SHARE="${VM_HOST_SHARE:-}" VM_MODULE="${VM_INSMOD:-}" \
		VM_HELPERS="${VM_HELPERS:-}" "$@" \
		bash --noprofile --norc "$SHARE/cmd" </dev/null >&8 2>&9 8>&- 9>&-
}

# guest_result RC TAINT_BEFORE: the command's status and the kernel's taint
# flags before and after it, for vm-run on the host; rc last, atomically.
guest_result() {
	echo "$2 $(</proc/sys/kernel/tainted)" >"$SHARE/tainted"
	echo "$1" >"$SHARE/rc.tmp"
	mv "$SHARE/rc.tmp" "$SHARE/rc"
}
