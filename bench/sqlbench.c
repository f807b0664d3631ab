// SPDX-License-Identifier: MIT
/*
 * SQLite transactions on a directory: N small transactions (one INSERT of a
 * 100-byte row each, SQLite's default synchronous=FULL, so every commit
 * syncs) in WAL and in rollback-journal (DELETE) mode, each on a fresh
 * database in DIR. Prints "MODE transactions/s" lines. Used by bench/peer.sh
 * to compare the same program on a snapfs mount and on another file system.
 *
 *   sqlbench DIR [N] [wal|delete|both]
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(const char *dir, long n, const char *mode)
{
	char path[4096], sql[256];
	snprintf(path, sizeof(path), "%s/sqlbench-%s.db", dir, mode);
	unlink(path);
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK) {
		fprintf(stderr, "sqlbench: %s: %s\n", path, sqlite3_errmsg(db));
		return -1;
	}
	snprintf(sql, sizeof(sql),
		 "PRAGMA journal_mode=%s; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);", mode);
	sqlite3_stmt *ins = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES (randomblob(100))", -1, &ins, NULL) !=
		SQLITE_OK) {
		fprintf(stderr, "sqlbench: %s: %s\n", path, sqlite3_errmsg(db));
		sqlite3_close(db);
		return -1;
	}
	double t0 = now();
	for (long i = 0; i < n; i++) {
		if (sqlite3_step(ins) != SQLITE_DONE) {
			fprintf(stderr, "sqlbench: %s: insert: %s\n", path, sqlite3_errmsg(db));
			break;
		}
		sqlite3_reset(ins);
	}
	double dt = now() - t0;
	sqlite3_finalize(ins);
	sqlite3_close(db);
	char extra[4200];
	unlink(path);
	snprintf(extra, sizeof(extra), "%s-wal", path);
	unlink(extra);
	snprintf(extra, sizeof(extra), "%s-shm", path);
	unlink(extra);
	printf("%s %.0f\n", mode, dt > 0 ? (double)n / dt : 0.0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: sqlbench DIR [N] [wal|delete|both]\n");
		return 2;
	}
	long n = argc > 2 ? strtol(argv[2], NULL, 10) : 1000;
	const char *which = argc > 3 ? argv[3] : "both";
	if (n <= 0 || (strcmp(which, "wal") && strcmp(which, "delete") && strcmp(which, "both"))) {
		fprintf(stderr, "sqlbench: bad arguments (N > 0; wal, delete or both)\n");
		return 2;
	}
	int rc = 0;
	if (strcmp(which, "delete"))
		rc |= run(argv[1], n, "wal");
	if (strcmp(which, "wal"))
		rc |= run(argv[1], n, "delete");
	return rc ? 1 : 0;
}
