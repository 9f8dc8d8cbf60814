// SPDX-License-Identifier: GPL-2.0
/*
 * dm-fail-nth.so - LD_PRELOAD shim for systematic fault injection in one
 * device-mapper ioctl: right before it, the calling thread's
 * /proc/thread-self/fail-nth is set to N, so that the Nth fault-injection
 * point the kernel passes in that ioctl (with failslab: the Nth slab
 * allocation) fails; right after it, fail-nth is read back (0: the fault
 * was injected; not 0: the ioctl made fewer than N allocations) and reset.
 *
 *   DMI_FAIL_NTH=N             the allocation to fail (unset or 0: none)
 *   DMI_FAIL_NTH_IOCTL=load    DM_TABLE_LOAD (default)
 *                     =resume  DM_DEV_SUSPEND without DM_SUSPEND_FLAG
 *   DMI_FAIL_NTH_REPORT=F      append "<injected 0|1> <ioctl rc> <errno>"
 *                              to file F for each ioctl armed
 *
 * Build: cc -shared -fPIC -o dm-fail-nth.so dm-fail-nth.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/dm-ioctl.h>

static int armed(unsigned long req, void *arg)
{
	const char *which = getenv("DMI_FAIL_NTH_IOCTL");
	struct dm_ioctl *dmi = arg;

	if (_IOC_TYPE(req) != DM_IOCTL)
		return 0;
	if (which && !strcmp(which, "resume"))
		return _IOC_NR(req) == DM_DEV_SUSPEND_CMD && dmi &&
		       !(dmi->flags & DM_SUSPEND_FLAG);
	return _IOC_NR(req) == DM_TABLE_LOAD_CMD;
}

int ioctl(int fd, unsigned long req, ...)
{
	static int (*real_ioctl)(int, unsigned long, ...);
	const char *nth = getenv("DMI_FAIL_NTH");
	const char *report = getenv("DMI_FAIL_NTH_REPORT");
	char buf[32];
	int nfd, r, err, injected;
	ssize_t len;
	va_list ap;
	void *arg;
	FILE *f;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);

	if (!real_ioctl)
		real_ioctl = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");

	if (!nth || !atoi(nth) || !armed(req, arg))
		return real_ioctl(fd, req, arg);

	nfd = open("/proc/thread-self/fail-nth", O_RDWR);
	if (nfd < 0) {
		perror("dm-fail-nth: /proc/thread-self/fail-nth");
		exit(99);
	}
	if (write(nfd, nth, strlen(nth)) != (ssize_t)strlen(nth)) {
		perror("dm-fail-nth: write fail-nth");
		exit(99);
	}
	r = real_ioctl(fd, req, arg);
	err = errno;
	len = pread(nfd, buf, sizeof(buf) - 1, 0);
	buf[len > 0 ? len : 0] = '\0';
	injected = len > 0 && atoi(buf) == 0;
	if (write(nfd, "0", 1) != 1)
		perror("dm-fail-nth: reset fail-nth");
	close(nfd);

	if (report && (f = fopen(report, "a"))) {
		fprintf(f, "%d %d %d\n", injected, r, r < 0 ? err : 0);
		fclose(f);
	}
	/* Only one ioctl of the process is armed. */
	unsetenv("DMI_FAIL_NTH");
	errno = err;
	return r;
}
