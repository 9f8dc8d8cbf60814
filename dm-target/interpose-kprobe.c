// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-interpose: kprobe backend of the interposer hook.
 *
 * Stock kernels have no interposer in the block layer, so this backend puts
 * a kprobe on the entry of submit_bio_noacct().  For a bio whose device has
 * an interposer the probe's handler replaces the call with
 * interpose_submit_bio_noacct(), which points the bio at the redirect
 * destination and submits it again.  The probe is registered only while at
 * least one redirect exists; a device without an interposer then pays one
 * hash lookup per bio (a partition two, while a whole disk is interposed).
 *
 * Why a kprobe and not an ftrace callback with FTRACE_OPS_FL_IPMODIFY: ftrace
 * allows one IPMODIFY callback per function, and other products (backup
 * agents' block filters) hold one on submit_bio_noacct().  A kprobe without
 * a post_handler is armed through ftrace without IPMODIFY, and its
 * pre_handler may still change the instruction pointer: that is how function
 * error injection overrides a function.  Both hooks then run: when both pick
 * the same bio, the one that runs last wins, and the other sees the bio when
 * it is submitted again (ours to the original device, the other product's
 * from its own filter).  On kernels where kprobes cannot use ftrace the probe
 * is a breakpoint, slower but the same.
 */
#include <linux/blk-mq.h>
#include <linux/hashtable.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/srcu.h>
#include <linux/workqueue.h>
#include <linux/device-mapper.h>

#include "interpose.h"

#define DM_MSG_PREFIX "interpose"
#define INTERPOSE_HASH_BITS 6

static DEFINE_HASHTABLE(interpose_hash, INTERPOSE_HASH_BITS);
/* interpose_hook_mark_own() points bi_private here. */
const char interpose_own_marker;
/* Serialises hash updates and (un)registration of the kprobe. */
static DEFINE_MUTEX(hook_mutex);
static unsigned int hook_users;
static bool hook_registered;
/* Readers: interpose_submit_bio_noacct(), which may sleep. */
DEFINE_STATIC_SRCU(interpose_srcu);

static void hook_unregister_fn(struct work_struct *work);
static DECLARE_WORK(hook_unregister_work, hook_unregister_fn);

/*
 * Readers of the hash: the kprobe handler, with preemption disabled (an
 * RCU read side: interposers are freed through call_rcu()), and
 * interpose_submit_bio_noacct(), inside interpose_srcu (an interposer is
 * freed only after interpose_hook_detach() has waited for that).
 */
static __always_inline struct interposer *hook_lookup(struct block_device *bdev)
{
	struct interposer *ip;

	hash_for_each_possible_rcu(interpose_hash, ip, hnode, (unsigned long)bdev,
				   srcu_read_lock_held(&interpose_srcu))
		if (ip->orig == bdev)
			return ip;
	return NULL;
}

/* Whole disks with an interposer: their partitions' bios go to it too. */
static unsigned int hook_whole_disks;

/* The interposer of a bio's device, or of the disk of its partition. */
static __always_inline struct interposer *hook_lookup_bio(struct bio *bio)
{
	struct block_device *bdev = bio->bi_bdev;
	struct interposer *ip;

	ip = hook_lookup(bdev);
	if (!ip && READ_ONCE(hook_whole_disks) && bdev_is_partition(bdev))
		ip = hook_lookup(bdev_whole(bdev));
	return ip;
}

/**
 * hook_wanted - may this bio be redirected?
 * @ip: the interposer of @bio's device, or of the disk of @bio's partition
 * @bio: a bio submitted to an interposed device
 *
 * Our own bios to the original device bypass the interposer, including what
 * the block layer resubmits of them after a split (the remainder is the bio
 * we marked).  A bio already remapped to the whole disk (BIO_REMAPPED) holds a
 * disk sector, not a partition sector, and is past the interposer.  A bio
 * of a partition of an interposed disk that does not fit the partition is
 * left to the block layer, which fails it.
 *
 * Return: true if the bio is to be redirected.
 */
static inline bool hook_wanted(struct interposer *ip, struct bio *bio)
{
	if (interpose_hook_own(bio) || bio_flagged(bio, BIO_REMAPPED))
		return false;
	return bio->bi_bdev == ip->orig ||
	       bio_end_sector(bio) <= bdev_nr_sectors(bio->bi_bdev);
}

/*
 * Runs instead of submit_bio_noacct() for a bio the handler picked.  The
 * lookup is repeated: the redirect may have gone away in between, and the
 * SRCU read section keeps @ip and its destination alive until the bio is
 * submitted to it.
 */
static void notrace interpose_submit_bio_noacct(struct bio *bio)
{
	struct interposer *ip;
	int idx;

	idx = srcu_read_lock(&interpose_srcu);
	/*
	 * Asked again: the interposer found now may be another one, e.g. of
	 * the whole disk where the handler found the partition's, and a bio
	 * past the end of the partition must not reach the disk.
	 */
	ip = hook_lookup_bio(bio);
	if (ip && hook_wanted(ip, bio))
		interpose_redirect(ip, bio);
	submit_bio_noacct(bio);
	srcu_read_unlock(&interpose_srcu, idx);
}

/*
 * Runs at the entry of every submit_bio_noacct() while a redirect exists,
 * so it does as little as it can: our own bios to an original device go
 * past without a lookup.  Kprobe handlers run with preemption disabled,
 * which is the RCU read side of the lookup.  submit_bio_noacct() may sleep,
 * so it is never called in a context that interrupts another kprobe handler
 * (which would make kprobes skip this one).
 *
 * Return: 1 when the call is replaced (the kprobe API's "regs->ip changed").
 */
static int interpose_kprobe_pre(struct kprobe *p, struct pt_regs *regs)
{
	struct bio *bio = (struct bio *)regs_get_kernel_argument(regs, 0);
	struct interposer *hit;

	if (interpose_hook_own(bio))
		return 0;
	hit = hook_lookup_bio(bio);
	if (!hit || !hook_wanted(hit, bio))
		return 0;
	instruction_pointer_set(regs, (unsigned long)interpose_submit_bio_noacct);
	return 1;
}

static struct kprobe interpose_kprobe = {
	.symbol_name = "submit_bio_noacct",
	.pre_handler = interpose_kprobe_pre,
};

static void hook_unregister_fn(struct work_struct *work)
{
	mutex_lock(&hook_mutex);
	if (!hook_users && hook_registered) {
		unregister_kprobe(&interpose_kprobe);
		hook_registered = false;
	}
	mutex_unlock(&hook_mutex);
}

/**
 * interpose_hook_get - make the hook ready for one more interposer
 *
 * Registers the kprobe for the first user.  Called before the original
 * device is frozen: registration patches kernel text, which takes a while,
 * and must not lengthen the time the filesystem is frozen.
 *
 * Return: 0 or a negative errno from kprobes.
 */
int interpose_hook_get(void)
{
	int r = 0;

	mutex_lock(&hook_mutex);
	if (!hook_registered) {
		/* A kprobe is reset for each registration. */
		interpose_kprobe.addr = NULL;
		interpose_kprobe.flags = 0;
		r = register_kprobe(&interpose_kprobe);
		if (r)
			DMERR("cannot register a kprobe on submit_bio_noacct: %d",
			      r);
		else
			hook_registered = true;
	}
	if (!r)
		hook_users++;
	mutex_unlock(&hook_mutex);
	return r;
}

/**
 * interpose_hook_put - drop a reference taken by interpose_hook_get()
 *
 * The kprobe is unregistered asynchronously when the last user goes, so
 * that detaching does not wait for the grace periods that takes.
 */
void interpose_hook_put(void)
{
	mutex_lock(&hook_mutex);
	if (!--hook_users)
		schedule_work(&hook_unregister_work);
	mutex_unlock(&hook_mutex);
}

/**
 * interpose_hook_attach - start routing the bios of @ip->orig to @ip->dest
 * @ip: the interposer, with @orig and @dest set
 *
 * Needs a reference from interpose_hook_get().  The queue of @ip->orig is
 * frozen meanwhile, so bios already on their way to its driver get there
 * first; a bio whose submit_bio_noacct() starts after this returns is
 * redirected.
 *
 * Return: 0.
 */
int interpose_hook_attach(struct interposer *ip)
{
	struct request_queue *q = bdev_get_queue(ip->orig);
	unsigned int memflags;

	memflags = interpose_freeze_queue(q);
	mutex_lock(&hook_mutex);
	if (!bdev_is_partition(ip->orig))
		WRITE_ONCE(hook_whole_disks, hook_whole_disks + 1);
	hash_add_rcu(interpose_hash, &ip->hnode, (unsigned long)ip->orig);
	mutex_unlock(&hook_mutex);
	interpose_unfreeze_queue(q, memflags);
	return 0;
}

/**
 * interpose_hook_detach - stop routing the bios of @ip->orig
 * @ip: an attached interposer
 *
 * On return no redirection of a bio through @ip is in progress, and what
 * was submitted straight to @ip->orig meanwhile has completed.
 */
void interpose_hook_detach(struct interposer *ip)
{
	struct request_queue *q = bdev_get_queue(ip->orig);

	mutex_lock(&hook_mutex);
	hash_del_rcu(&ip->hnode);
	if (!bdev_is_partition(ip->orig))
		WRITE_ONCE(hook_whole_disks, hook_whole_disks - 1);
	mutex_unlock(&hook_mutex);
	synchronize_srcu_expedited(&interpose_srcu);
	interpose_unfreeze_queue(q, interpose_freeze_queue(q));
}

/**
 * interpose_hook_sync - wait for redirections in progress
 * @ip: an attached interposer
 *
 * After a change of @ip's destination, waits until no bio is being
 * redirected to the previous one.
 */
void interpose_hook_sync(struct interposer *ip)
{
	synchronize_srcu_expedited(&interpose_srcu);
}

int interpose_hook_init(void)
{
	return 0;
}

void interpose_hook_exit(void)
{
	cancel_work_sync(&hook_unregister_work);
	hook_unregister_fn(NULL);
	/* No task may still be running interpose_submit_bio_noacct(). */
	synchronize_srcu(&interpose_srcu);
	synchronize_rcu_tasks();
}
