# shellcheck shell=bash
# pins.sh - pinned versions and common paths; sourced by the other scripts.
# Usage: source "$(dirname "${BASH_SOURCE[0]}")/pins.sh"

# The primary kernel (Debian packages linux-image-$KVER, linux-headers-$KVER):
# the default of every script, the full stock lane, the native series' base.
# make module KVER=... and the scripts' --kver take any kernel of KERNELS.
KVER=6.12.117+deb12-amd64

# The kernel matrix (make check-kernels): the newest Debian build of each line
# Debian ships. Fields: kernel release; the Debian suite of its packages; its
# image package(s), comma-separated (7.x splits it into linux-binary and
# linux-modules); where its modules are built: "host" (this bookworm host's
# gcc-12), else a chroot of that Debian release (its own gcc, as DKMS on that
# system would build). To add a kernel, add its line.
# shellcheck disable=SC2034 # used by scripts/lib/kernels.bash
KERNELS=(
	"6.1.0-50-amd64 bookworm linux-image-6.1.0-50-amd64-unsigned host"
	"6.12.117+deb12-amd64 bookworm linux-image-6.12.117+deb12-amd64 host"
	"7.3.4+deb13-amd64 trixie-backports linux-binary-7.3.4+deb13-amd64,linux-modules-7.3.4+deb13-amd64 trixie"
)
# Kernel images, their modules and the build chroots (kept between runs).
KCACHE=/var/cache/dm-interpose

# The kernel source the patch series (kernel-patches/) applies to, the
# newest Debian ships: make kernel builds it, checkpatch.pl comes from it.
# scripts/get-ksrc fetches it from its suite into KSRC_TARBALL.
KSRC_PKG=linux-source-7.3
KSRC_VERSION=7.3.4-1~bpo13+1
KSRC_SUITE=trixie-backports
KSRC_TARBALL=$KCACHE/src/$KSRC_PKG-$KSRC_VERSION.tar.xz

# lvm2 as Debian ships it: the source our lvm-patches/ apply to (make lvm).
LVM2_VERSION=2.03.16-2

# Repository root, build output directory, the module we build and test.
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$TOP/build
MODULE_DIR=$TOP/dm-target
MODULE=$MODULE_DIR/dm-interpose.ko

# Stock (Debian) kernel artifacts.
STOCK_KERNEL_IMAGE=/boot/vmlinuz-$KVER
STOCK_MODULES_DIR=/lib/modules/$KVER

export KVER KCACHE KSRC_PKG KSRC_VERSION KSRC_SUITE KSRC_TARBALL LVM2_VERSION TOP BUILD MODULE_DIR MODULE STOCK_KERNEL_IMAGE STOCK_MODULES_DIR
