// SPDX-License-Identifier: GPL-2.0
/*
 * dm-ioctl-fail.so - LD_PRELOAD shim for the failure-point tests: makes the
 * Nth device-mapper ioctl of a process fail with EIO, as if the kernel had
 * refused it, so that every step of a multi-ioctl dmsetup command can be
 * made to fail in turn.
 *
 *   DMI_FAIL_AT=N      fail the Nth DM ioctl (DM_VERSION not counted)
 *   DMI_FAIL_COUNT=F   write the number of DM ioctls made to file F at exit
 *
 * Build: cc -shared -fPIC -o dm-ioctl-fail.so dm-ioctl-fail.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <linux/dm-ioctl.h>

static int dm_ioctls;

int ioctl(int fd, unsigned long req, ...)
{
	static int (*real_ioctl)(int, unsigned long, ...);
	const char *at = getenv("DMI_FAIL_AT");
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);

	if (!real_ioctl)
		real_ioctl = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");

	if (_IOC_TYPE(req) == DM_IOCTL && _IOC_NR(req) != DM_VERSION_CMD) {
		dm_ioctls++;
		if (at && atoi(at) == dm_ioctls) {
			fprintf(stderr, "dm-ioctl-fail: failing DM ioctl #%d (command %u)\n",
				dm_ioctls, (unsigned int)_IOC_NR(req));
			errno = EIO;
			return -1;
		}
	}

	return real_ioctl(fd, req, arg);
}

__attribute__((destructor)) static void report(void)
{
	const char *file = getenv("DMI_FAIL_COUNT");
	FILE *f;

	if (file && (f = fopen(file, "w"))) {
		fprintf(f, "%d\n", dm_ioctls);
		fclose(f);
	}
}
