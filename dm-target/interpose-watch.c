// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-interpose: noticing that an interposed device goes away.
 *
 * The target opens the original device non-exclusively, so the block layer
 * tells it nothing when the device's disk is removed (a hot-unplug, a
 * surprise removal): only the exclusive holder, the filesystem, learns it
 * through its holder operations.  Until the block layer's interposer can
 * report it, an ftrace callback on the entry of bdev_mark_dead(), which the
 * block layer calls for every block device of a disk that goes away, tells
 * the target, which then detaches the redirect (interpose_orig_dead()).
 *
 * The callback is registered for as long as the module is loaded: it costs
 * nothing until a disk goes away, and registering it with every redirect
 * would double the text patching an attach waits for.
 */
#include <linux/ftrace.h>
#include <linux/device-mapper.h>

#include "interpose.h"

#define DM_MSG_PREFIX "interpose"

static void notrace interpose_watch_cb(unsigned long ip, unsigned long parent_ip,
				       struct ftrace_ops *ops,
				       struct ftrace_regs *fregs)
{
	interpose_orig_dead();
}

static struct ftrace_ops interpose_watch_ops = {
	.func = interpose_watch_cb,
	.flags = FTRACE_OPS_FL_DYNAMIC
#ifndef CONFIG_HAVE_DYNAMIC_FTRACE_WITH_ARGS
		 | FTRACE_OPS_FL_SAVE_REGS
#endif
		 ,
};

/**
 * interpose_watch_init - start watching for disks that go away
 *
 * Return: 0 or a negative errno from ftrace.
 */
int interpose_watch_init(void)
{
	/* ftrace may edit the pattern in place. */
	unsigned char func[] = "bdev_mark_dead";
	int r;

	r = ftrace_set_filter(&interpose_watch_ops, func, strlen(func), 0);
	if (!r)
		r = register_ftrace_function(&interpose_watch_ops);
	if (r) {
		DMERR("cannot trace bdev_mark_dead: %d", r);
		ftrace_free_filter(&interpose_watch_ops);
	}
	return r;
}

/**
 * interpose_watch_exit - stop watching; no callback runs on return
 */
void interpose_watch_exit(void)
{
	unregister_ftrace_function(&interpose_watch_ops);
	ftrace_free_filter(&interpose_watch_ops);
}
