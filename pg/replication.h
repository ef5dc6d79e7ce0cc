/* pg/replication.h: a physical replication client over libpq.
 *
 * Place in the data flow: the source of base backups (BASE_BACKUP, whose tar
 * streams go to the tar parser and from there into snapshot trees) and of streamed
 * WAL (START_REPLICATION PHYSICAL). Nothing here stores, prints or reads the
 * environment itself; note that libpq fills unset connection parameters from PG*
 * environment variables and ~/.pgpass as it always does.
 *
 * Connections: bk_pgrepl_open() adds replication=true (a physical walsender
 * connection) to the caller's conninfo, which may be "key=value" pairs, a
 * postgresql:// URI, or "" for libpq's defaults. A connection is used by one thread
 * at a time. After any failed command the connection is marked broken (a walsender
 * in the middle of a COPY cannot be resynchronised) and every later command fails
 * with -EPIPE: close it and open another.
 *
 * Errors: every libpq and server failure is translated in one place into
 * BK_E_REMOTE with the server's message in the detail ("base backup: could not
 * connect ..."); BK_E_VERSION for a server too old for a command; BK_E_CORRUPT for
 * a reply that breaks the protocol; BK_E_USAGE for bad arguments; a callback's own
 * negative return is passed through unchanged.
 *
 * Ownership: BkPgRepl is owned by the caller (bk_pgrepl_close). Strings and
 * buffers handed to callbacks or returned in BkPgReplMsg are borrowed, valid only
 * until the callback returns or the next call on the connection.
 */
#ifndef BK_PG_REPLICATION_H
#define BK_PG_REPLICATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct BkPgRepl BkPgRepl;

/* Connects. BK_E_REMOTE (with libpq's message) if the server cannot be reached or
 * refuses a replication connection. */
int bk_pgrepl_open(const char *conninfo, BkPgRepl **ret);

/* The server's WARNINGs on the connection (their primary message) go to fn; every
 * other notice is dropped. Without a callback all are. */
void bk_pgrepl_on_warning(BkPgRepl *c, void (*fn)(void *ud, const char *msg), void *ud);

/* From here on bk_pgrepl_identify_system and bk_pgrepl_show fail (BK_E_REMOTE,
 * "stall timeout", the connection then of no further use) once the server has
 * sent nothing for stall_s seconds (0, the default: they wait for ever). A base
 * backup has its own (BkPgReplBackupOptions.stall_timeout_s). */
void bk_pgrepl_set_stall(BkPgRepl *c, unsigned stall_s);

/* Closes the connection (the server aborts any command in progress). NULL accepted. */
void bk_pgrepl_close(BkPgRepl *c);

/* The server's version number as PQserverVersion() gives it (150020 for 15.20). */
int bk_pgrepl_server_version(const BkPgRepl *c);

typedef struct {
	uint64_t sysid;   /* pg_control's system identifier */
	uint32_t tli;     /* the server's current timeline */
	uint64_t xlogpos; /* current WAL flush location */
} BkPgReplSystem;

/* IDENTIFY_SYSTEM. */
int bk_pgrepl_identify_system(BkPgRepl *c, BkPgReplSystem *ret);

/* SHOW name: a setting's value as the server prints it (at most cap - 1 bytes,
 * else BK_E_CORRUPT). Names are [a-z_.]. */
int bk_pgrepl_show(BkPgRepl *c, const char *name, char *buf, size_t cap);

/* ---- BASE_BACKUP (PostgreSQL 15 and later) ---------------------------------- */

typedef struct {
	const char *label;    /* NULL: "bunker". Printable ASCII, at most 1000 bytes */
	bool fast_checkpoint; /* CHECKPOINT 'fast' (else 'spread') */
	bool no_wait;         /* WAIT false: do not wait for the backup's WAL to be archived */
	uint32_t max_rate_kb; /* MAX_RATE in kB/s (32..1048576), 0 for unlimited */
	/* VERIFY_CHECKSUMS false. Else, with data checksums on, a page that fails its
	 * checksum fails the backup (the server WARNs of each, then ends in an ERROR
	 * after the last archive). */
	bool no_verify_checksums;
	/* Once the archives stream: fail (BK_E_REMOTE, "stall timeout") when the server
	 * sends nothing, neither data nor a notice, for this many seconds; 0: wait for
	 * ever. Counts the server's wait for WAL archiving at the end (WAIT true, which
	 * warns after 60, 120, 240 ... s) but not its checkpoint at the start, nor the
	 * time the callbacks take. */
	uint32_t stall_timeout_s;
} BkPgReplBackupOptions;

/* Each callback may be NULL; returning < 0 aborts the backup with that code.
 * archive_end runs only once its archive is known to be complete: when the next
 * archive starts or, for the last one, once the server has sent the backup's end
 * location; after a failure the archive in progress gets no archive_end. Even so,
 * nothing received is a valid backup until bk_pgrepl_base_backup returns 0. The
 * main data directory arrives as "base.tar" with spclocation "", each tablespace
 * as "<oid>.tar" with its location. Archives are tar streams that PostgreSQL 15
 * ends with the two end-of-archive blocks (feed them to a BkTarParser with
 * BK_TAR_REQUIRE_END, so that one cut between two entries fails, as
 * pg/basebackup.c does); backup_label and tablespace_map are files inside base.tar. Because the command
 * asks for TABLESPACE_MAP, base.tar's pg_tblspc/ is an empty directory: the links
 * are the "<oid> <location>" lines of tablespace_map (an empty file when there
 * are no tablespaces). progress reports bytes sent so far against the
 * server's size estimate (0 if none). */
typedef struct {
	int (*archive_start)(void *ctx, const char *name, const char *spclocation);
	int (*archive_data)(void *ctx, const void *buf, size_t len);
	int (*archive_end)(void *ctx, const char *name);
	int (*progress)(void *ctx, uint64_t done, uint64_t total);
} BkPgReplBackupCallbacks;

typedef struct {
	uint64_t start_lsn, end_lsn;
	uint32_t start_tli, end_tli;
	uint64_t total_estimate; /* bytes, from the tablespace list */
	uint64_t bytes;          /* archive bytes received */
	unsigned archives;       /* archives received (1 + tablespaces) */
} BkPgReplBackupResult;

/* Runs BASE_BACKUP ( LABEL, PROGRESS, CHECKPOINT, WAIT, MANIFEST 'no',
 * TABLESPACE_MAP, [MAX_RATE, VERIFY_CHECKSUMS] ) and streams every archive through cb. Returns 0 and fills *ret
 * only once the server has sent the end location, i.e. the backup is complete and
 * (unless no_wait) its WAL archived. BK_E_VERSION before PostgreSQL 15. */
int bk_pgrepl_base_backup(BkPgRepl *c, const BkPgReplBackupOptions *opt,
                          const BkPgReplBackupCallbacks *cb, void *ctx,
                          BkPgReplBackupResult *ret);

/* ---- START_REPLICATION PHYSICAL --------------------------------------------- */

/* Wire messages of the streaming protocol, parsed and built without a connection
 * (for tests and fuzzing). Timestamps are microseconds since 2000-01-01 UTC, as
 * PostgreSQL sends them; BK_PGREPL_EPOCH_OFFSET_US converts from the Unix epoch. */
#define BK_PGREPL_EPOCH_OFFSET_US INT64_C(946684800000000)
#define BK_PGREPL_STATUS_LEN 34

typedef enum {
	BK_PGREPL_MSG_XLOG = 1,  /* 'w' XLogData: data[len] belongs at data_start */
	BK_PGREPL_MSG_KEEPALIVE, /* 'k': reply_requested asks for a status update now */
	BK_PGREPL_MSG_END,       /* the server ended the stream (only from stream_recv) */
} BkPgReplMsgKind;

typedef struct {
	BkPgReplMsgKind kind;
	uint64_t data_start;  /* XLOG: WAL location of data[0] */
	uint64_t wal_end;     /* XLOG, KEEPALIVE: the server's current end of WAL */
	int64_t send_time;    /* XLOG, KEEPALIVE */
	bool reply_requested; /* KEEPALIVE */
	const uint8_t *data;  /* XLOG: borrowed */
	size_t len;
	uint32_t next_tli;    /* END: the timeline that follows, 0 if not reported */
	uint64_t next_lsn;    /* END: where next_tli starts */
} BkPgReplMsg;

/* Parses one CopyData payload from a walsender ('w' or 'k'). BK_E_CORRUPT for a
 * short, long or unknown message. ret->data points into buf. */
int bk_pgrepl_msg_parse(const void *buf, size_t len, BkPgReplMsg *ret);

/* Encodes a standby status update ('r'). The positions are what the caller has
 * received, fsync'd and applied; never report as flushed what is not durable. */
void bk_pgrepl_status_encode(uint8_t out[BK_PGREPL_STATUS_LEN], uint64_t write, uint64_t flush,
                             uint64_t apply, int64_t now_pg_us, bool reply_requested);

/* START_REPLICATION [SLOT slot] PHYSICAL lsn TIMELINE tli. slot may be NULL.
 * Streaming starts exactly at lsn; callers usually pass a segment start. Some
 * refusals (a start position beyond the server's flush position) are sent only once
 * the stream has begun: they come back from the first bk_pgrepl_stream_recv. */
int bk_pgrepl_stream_start(BkPgRepl *c, const char *slot, uint32_t tli, uint64_t start_lsn);

/* Waits up to timeout_ms (-1: forever; 0: takes what has arrived, without
 * waiting) for one message. Returns 1 with *ret
 * filled, 0 on timeout, < 0 on failure. BK_PGREPL_MSG_END means the server ended
 * the stream (the timeline ended, with next_tli/next_lsn when the server reported
 * them); the connection is then ready for another command. */
int bk_pgrepl_stream_recv(BkPgRepl *c, int timeout_ms, BkPgReplMsg *ret);

/* Sends a standby status update now (bk_now_us() gives the clock). */
int bk_pgrepl_stream_status(BkPgRepl *c, uint64_t write, uint64_t flush, uint64_t apply,
                            bool reply_requested);

/* Ends the stream from the client side: sends CopyDone, discards WAL still in
 * flight and reads the server's completion. The connection is then ready for
 * another command. */
int bk_pgrepl_stream_stop(BkPgRepl *c);

#endif
