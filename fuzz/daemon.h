/* SPDX-License-Identifier: MIT */
/*
 * The daemon the control and side-channel fuzz targets talk to: one snapfs
 * (SNAPFS_BIN) started at fuzzer init on a scratch SOURCE and mount point
 * in /dev/shm, with a few files, unmounted and killed by its PID at exit.
 * fz_alive() is the check after every input: a dead or hung daemon aborts
 * the fuzzer, so libFuzzer reports the input as a crash.
 */
#ifndef FUZZ_DAEMON_H
#define FUZZ_DAEMON_H

#include "snapfs_proto.h"

/* SOURCE and the mount point; valid after fz_start(). */
extern char fz_source[64], fz_mnt[80];

/* Start the daemon once (later calls return at once); exits on failure. */
void fz_start(void);
/* Abort (after unmounting) unless the daemon runs and its mount answers. */
void fz_alive(void);
/* SNAPFS_IOC_CALL on fd: the ioctl's result (-errno), r->status after it. */
int fz_call(int fd, struct snapfs_req *r);

/* Tell libFuzzer what the daemon answered (the daemon is not instrumented):
 * each (what, status) pair seen counts as new coverage. */
void fz_feedback(unsigned what, int status);

#endif
