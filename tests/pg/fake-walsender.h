/* tests/pg/fake-walsender.h: just enough of a PostgreSQL 15 walsender, on a
 * loopback port, to reach the error paths of a base backup that a real server
 * never takes: a stream cut inside an archive, fewer archives than tablespaces,
 * an end location before the start, malformed messages. It is not a replacement
 * for the real server (tests/pg/pg-live.sh and the integration tests use one):
 * each test that uses it also runs a well-formed stream through it, so that a
 * refusal is known to come from the bytes the test broke.
 *
 * Protocol 3.0 without SSL (conninfo has sslmode=disable gssencmode=disable),
 * trust authentication, server_version 15.4 (or fw_set_version's). Connections are served one at a time
 * in a thread. Queries answered: IDENTIFY_SYSTEM (FW_SYSID, timeline 1,
 * 0/3000000), SHOW wal_segment_size (16MB) and in_hot_standby (off; before 14 an
 * unknown setting, as there), and
 * BASE_BACKUP, which gets the bytes of fw_set_reply() verbatim followed by
 * ReadyForQuery (none, and the connection closed, with hangup). Anything else
 * gets an ErrorResponse, but a query fw_set_mute() silences. Replies are built
 * with the fw_* message writers below.
 *
 * Not thread-safe beyond this: set the reply, then run the command that reads
 * it. Test code only: failures to listen abort the program. */
#ifndef BK_TESTS_FAKE_WALSENDER_H
#define BK_TESTS_FAKE_WALSENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tests/tap.h"

#define FW_SYSID "7310000000000000077"

/* Messages are built in a TapBuf (tests/tap.h). */

/* Backend messages, appended to b. */
/* A result set of ncols text columns and nrows rows (cells row-major, NULL for an
 * SQL NULL), ended by CommandComplete with tag. */
void fw_result(TapBuf *b, int ncols, int nrows, const char *const *cells, const char *tag);
/* BASE_BACKUP's start or end location: one row (recptr, tli). */
void fw_lsn_result(TapBuf *b, const char *lsn, const char *tli);
void fw_copy_out(TapBuf *b);                              /* CopyOutResponse */
void fw_copy_data(TapBuf *b, const void *p, size_t n);    /* CopyData: p is the payload */
void fw_copy_done(TapBuf *b);                             /* CopyDone */
void fw_command_complete(TapBuf *b, const char *tag);
void fw_error(TapBuf *b, const char *msg);                /* ErrorResponse, severity ERROR */

/* Payloads of BASE_BACKUP's CopyData messages, as fw_copy_data messages. */
void fw_new_archive(TapBuf *b, const char *name, const char *location); /* 'n' */
void fw_archive_data(TapBuf *b, const void *p, size_t n);                 /* 'd' */
void fw_progress(TapBuf *b, uint64_t done);                               /* 'p' */

typedef struct FakeWalsender FakeWalsender;

FakeWalsender *fw_start(void);
/* "host=127.0.0.1 port=N ..." for bk_pgrepl_open; borrowed until fw_stop. */
const char *fw_conninfo(const FakeWalsender *f);
/* What the next BASE_BACKUP gets (copied); with hangup the connection is closed
 * right after it. */
void fw_set_reply(FakeWalsender *f, const TapBuf *reply, bool hangup);
/* Queries that start with prefix get no answer from here on (NULL or "": all are
 * answered again): the connection stays open, silent, until the client closes it. */
void fw_set_mute(FakeWalsender *f, const char *prefix);
/* The server_version the next connections are told ("15.4" until set). */
void fw_set_version(FakeWalsender *f, const char *version);
/* The text of the last BASE_BACKUP command received ("" before any). */
const char *fw_last_backup_command(FakeWalsender *f);
void fw_stop(FakeWalsender *f);

/* ---- tar ---- */

/* Sets the checksum of the 512-byte tar header h (after a test changed a field). */
void fw_tar_checksum(uint8_t *h);
/* Appends a ustar header (regular file '0', directory '5', hard link '1' or
 * symbolic link '2' to the path in data) and, for a file, its n bytes of data
 * padded to the block size. */
void fw_tar_entry(TapBuf *t, char type, const char *path, const void *data, size_t n,
                  int64_t mtime);
void fw_tar_end(TapBuf *t); /* the two zero blocks */

#endif
