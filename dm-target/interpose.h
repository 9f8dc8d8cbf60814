/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-interpose: internal interface between the "interpose" target and the
 * interposer hook backend that routes a block device's bios to it.
 */
#ifndef DM_INTERPOSE_H
#define DM_INTERPOSE_H

#include <linux/blkdev.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/rcupdate.h>

struct interpose_c;

/**
 * struct interposer - a live redirect of one block device's bios
 * @hnode: hook backend's lookup link (RCU)
 * @list: link on the core's list of interposers (interpose_mutex)
 * @kref: references: the owning table and a pending thaw work
 * @orig: the interposed device (partition or whole disk)
 * @orig_file: our own non-exclusive open of @orig
 * @dest: device the bios of @orig are redirected to (RCU-like: read under
 *	the hook's protection, changed with interpose_hook_sync() after)
 * @dest_file: exclusive open of @dest, holder ops forward freeze to @orig
 * @owner: table target that owns the redirect (interpose_mutex)
 * @redirected: per-cpu count of bios redirected
 * @lock: protects the freeze counters below
 * @holder_freezes: freezes of @orig done for a freeze of @dest
 * @suspend_freezes: freezes of @orig done by the owner's presuspend
 * @deferred_thaws: thaws of @orig queued to @thaw_work
 * @thaw_work: thaws @orig from a context that can wait for the stack
 * @rcu: frees the structure after an RCU grace period
 */
struct interposer {
	struct hlist_node hnode;
	struct list_head list;
	struct kref kref;
	struct block_device *orig;
	struct file *orig_file;
	struct block_device *dest;
	struct file *dest_file;
	struct interpose_c *owner;
	u64 __percpu *redirected;
	spinlock_t lock;		/* protects the freeze counters */
	unsigned int holder_freezes;
	unsigned int suspend_freezes;
	unsigned int deferred_thaws;
	struct work_struct thaw_work;
	struct rcu_head rcu;
};

/* Provided by the hook backend (interpose-ftrace.c or the native one). */
extern const char *const interpose_hook_name;
int interpose_hook_init(void);
void interpose_hook_exit(void);
int interpose_hook_get(void);
void interpose_hook_put(void);
void interpose_hook_attach(struct interposer *ip);
void interpose_hook_detach(struct interposer *ip);
void interpose_hook_sync(void);

/* Provided by the target, called by the hook backend. */
bool interpose_bio_wanted(struct interposer *ip, struct bio *bio);
void interpose_redirect(struct interposer *ip, struct bio *bio);

#endif /* DM_INTERPOSE_H */
