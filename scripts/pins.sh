# shellcheck shell=bash
# pins.sh - pinned versions and common paths; sourced by the other scripts.
# Usage: source "$(dirname "${BASH_SOURCE[0]}")/pins.sh"

# The one pinned kernel (Debian packages linux-image-$KVER, linux-headers-$KVER).
KVER=6.12.117+deb12-amd64

# The source of that kernel (checkpatch.pl; the native-hook patch series).
KSRC_PKG=linux-source-6.12
KSRC_VERSION=6.12.117-1~deb12u1

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

export KVER KSRC_PKG KSRC_VERSION LVM2_VERSION TOP BUILD MODULE_DIR MODULE STOCK_KERNEL_IMAGE STOCK_MODULES_DIR
