// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-interpose: noticing that an interposed device goes away.
 *
 * The target opens the original device non-exclusively, so the block layer
 * tells it nothing when the device's disk is removed (a hot-unplug, a
 * surprise removal): only the exclusive holder, the filesystem, learns it
 * through its holder operations.  Until the block layer's interposer can
 * report it, return probes on del_gendisk() and blk_mark_disk_dead(), the
 * two ways a disk goes away, tell the target, which then detaches the
 * redirects whose original device is gone (interpose_orig_dead()).  At
 * their return the disk is no longer live, or is marked dead.  (A partition
 * that the target holds open cannot be deleted on its own.)
 *
 * The probes are registered for as long as the module is loaded: they cost
 * nothing until a disk goes away.
 */
#include <linux/kprobes.h>
#include <linux/device-mapper.h>

#include "interpose.h"

#define DM_MSG_PREFIX "interpose"

static int interpose_watch_ret(struct kretprobe_instance *ri,
			       struct pt_regs *regs)
{
	interpose_orig_dead();
	return 0;
}

static struct kretprobe interpose_watch_del = {
	.kp.symbol_name = "del_gendisk",
	.handler = interpose_watch_ret,
	.maxactive = 16,
};

static struct kretprobe interpose_watch_dead = {
	.kp.symbol_name = "blk_mark_disk_dead",
	.handler = interpose_watch_ret,
	.maxactive = 16,
};

static struct kretprobe *interpose_watches[] = {
	&interpose_watch_del,
	&interpose_watch_dead,
};

/**
 * interpose_watch_init - start watching for disks that go away
 *
 * Return: 0 or a negative errno from kprobes.
 */
int interpose_watch_init(void)
{
	int r;

	r = register_kretprobes(interpose_watches, ARRAY_SIZE(interpose_watches));
	if (r)
		DMERR("cannot probe del_gendisk and blk_mark_disk_dead: %d", r);
	return r;
}

/**
 * interpose_watch_exit - stop watching; no handler runs on return
 */
void interpose_watch_exit(void)
{
	unregister_kretprobes(interpose_watches, ARRAY_SIZE(interpose_watches));
}
