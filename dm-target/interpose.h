/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-interpose: internal interface between the "interpose" target and the
 * interposer hook backend that routes a block device's bios to it.
 */
#ifndef DM_INTERPOSE_H
#define DM_INTERPOSE_H

#include <linux/bio.h>
#include <linux/blkdev.h>
#if IS_ENABLED(CONFIG_BLK_INTERPOSER)
#include <linux/blk-interposer.h>
#endif
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/rcupdate.h>

#include "interpose-compat.h"

struct interpose_c;

/**
 * struct interposer - a live redirect of one block device's bios
 * @bi: the block layer's interposer (native backend)
 * @hnode: hook backend's lookup link (RCU; kprobe backend)
 * @list: link on the core's list of interposers (interpose_mutex)
 * @kref: references: the owning table and a pending thaw work
 * @orig: the interposed device (partition or whole disk)
 * @orig_open: our own non-exclusive, read-only open of @orig
 * @dest: device the bios of @orig are redirected to (RCU-like: read under
 *	the hook's protection, changed with interpose_hook_sync() after)
 * @dest_open: exclusive open of @dest, holder ops forward freeze to @orig
 * @owner: table target that owns the redirect (interpose_mutex)
 * @redirected: per-cpu count of bios redirected
 * @lock: protects the freeze counters below
 * @holder_freezes: freezes of @orig done for a freeze of @dest
 * @holder_gen: changes when @dest_open is closed: a forwarded freeze that
 *	ends after the close it raced with thaws @orig again by itself
 * @suspend_freezes: freezes of @orig done by the owner's presuspend
 * @deferred_thaws: thaws of @orig queued to @thaw_work
 * @thaw_work: thaws @orig from a context that can wait for the stack
 * @rcu: frees the structure after an RCU grace period
 */
struct interposer {
#if IS_ENABLED(CONFIG_BLK_INTERPOSER)
	struct blk_interposer bi;
#else
	struct hlist_node hnode;
#endif
	struct list_head list;
	struct kref kref;
	struct block_device *orig;
	struct interpose_bdev orig_open;
	struct block_device *dest;
	struct interpose_bdev dest_open;
	struct interpose_c *owner;
	u64 __percpu *redirected;
	spinlock_t lock;		/* protects the freeze counters */
	unsigned int holder_freezes;
	unsigned int holder_gen;
	unsigned int suspend_freezes;
	unsigned int deferred_thaws;
	struct work_struct thaw_work;
	struct rcu_head rcu;
};

/* Provided by the target, called by the hook backend. */
void interpose_redirect(struct interposer *ip, struct bio *bio);
void interpose_orig_dead(void);

/*
 * Watching for interposed devices that go away (interpose-watch.c, built
 * when the kernel has kprobes).
 */
#ifdef DM_INTERPOSE_WATCH
int interpose_watch_init(void);
void interpose_watch_exit(void);
#else
static inline int interpose_watch_init(void)
{
	return 0;
}

static inline void interpose_watch_exit(void)
{
}
#endif

/*
 * The hook backend, picked at build time: the block layer's own interposer
 * when the kernel has one (CONFIG_BLK_INTERPOSER, from the patch series),
 * else a kprobe on submit_bio_noacct() (interpose-kprobe.c, built when
 * the kernel has kprobes: DM_INTERPOSE_KPROBE); without, a stub that refuses
 * every attach.
 *
 * interpose_hook_init/exit: module load and unload.
 * interpose_hook_get/put: bracket the life of each redirect; get may do
 *	slow preparation, before the original device is frozen.
 * interpose_hook_attach: start redirecting @ip->orig to @ip->dest; the
 *	filesystem on @ip->orig is frozen, the backend drains its queue.
 * interpose_hook_detach: stop it; on return no bio is being redirected and
 *	every bio submitted straight to @ip->orig meanwhile has completed.
 * interpose_hook_sync: after @ip->dest changed, wait until no bio is on its
 *	way to the previous destination.
 * interpose_hook_mark_own: mark a bio of ours to @ip->orig, to go past.
 * interpose_hook_own: is this a bio interpose_hook_mark_own() marked?
 */
#if IS_ENABLED(CONFIG_BLK_INTERPOSER)
#define INTERPOSE_HOOK_NAME "native"

static void interpose_native_redirect(struct blk_interposer *bi,
				      struct bio *bio)
{
	interpose_redirect(container_of(bi, struct interposer, bi), bio);
}

static const struct blk_interposer_ops interpose_native_ops = {
	.redirect = interpose_native_redirect,
};

static inline int interpose_hook_init(void)
{
	return 0;
}

static inline void interpose_hook_exit(void)
{
}

static inline int interpose_hook_get(void)
{
	return 0;
}

static inline void interpose_hook_put(void)
{
}

static inline int interpose_hook_attach(struct interposer *ip)
{
	ip->bi.ops = &interpose_native_ops;
	return bdev_interposer_attach(ip->orig, &ip->bi);
}

static inline void interpose_hook_detach(struct interposer *ip)
{
	bdev_interposer_detach(ip->orig, &ip->bi);
}

static inline void interpose_hook_sync(struct interposer *ip)
{
	bdev_interposer_sync(ip->orig);
}

static inline void interpose_hook_mark_own(struct bio *bio)
{
	bio_set_flag(bio, BIO_INTERPOSED);
}

static inline bool interpose_hook_own(struct bio *bio)
{
	return bio_flagged(bio, BIO_INTERPOSED);
}
#elif defined(DM_INTERPOSE_KPROBE)
#define INTERPOSE_HOOK_NAME "kprobe"

int interpose_hook_init(void);
void interpose_hook_exit(void);
int interpose_hook_get(void);
void interpose_hook_put(void);
int interpose_hook_attach(struct interposer *ip);
void interpose_hook_detach(struct interposer *ip);
void interpose_hook_sync(struct interposer *ip);

/*
 * The kprobe hook knows our bios by their bi_private: they are DM's clones,
 * which DM completes through their embedding and leaves bi_private unused;
 * no other owner of a bio can point it at our marker.
 */
extern const char interpose_own_marker;

static inline void interpose_hook_mark_own(struct bio *bio)
{
	bio->bi_private = (void *)&interpose_own_marker;
}

static inline bool interpose_hook_own(struct bio *bio)
{
	return bio->bi_private == &interpose_own_marker;
}
#else
#define INTERPOSE_HOOK_NAME "none"

static inline int interpose_hook_init(void)
{
	return 0;
}

static inline void interpose_hook_exit(void)
{
}

static inline int interpose_hook_get(void)
{
	pr_err(DM_NAME ": interpose: this kernel has neither the block interposer nor kprobes (CONFIG_KPROBES): cannot attach\n");
	return -EOPNOTSUPP;
}

static inline void interpose_hook_put(void)
{
}

static inline int interpose_hook_attach(struct interposer *ip)
{
	return -EOPNOTSUPP;
}

static inline void interpose_hook_detach(struct interposer *ip)
{
}

static inline void interpose_hook_sync(struct interposer *ip)
{
}

static inline void interpose_hook_mark_own(struct bio *bio)
{
}

static inline bool interpose_hook_own(struct bio *bio)
{
	return false;
}
#endif

#endif /* DM_INTERPOSE_H */
