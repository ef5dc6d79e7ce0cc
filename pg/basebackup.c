#include "pg/basebackup.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/replication.h"
#include "pg/tar.h"
#include "pg/wal.h"
#include "pg/walarchive.h"
#include "store/error.h"
#include "store/restorer.h"
#include "store/treebuild.h"
#include "store/util.h"

#define SMALL_FILE_MAX (1u << 20) /* backup_label and tablespace_map are captured */

typedef struct {
	BkRepo *repo;
	BkWriter *writer;
	BkChunkStream *stream;
	BkTreeBuilder *tree;
	BkTarParser *tar;
	const BkBaseBackupOpts *o;
	char prefix[64]; /* "" for base.tar, ".bunker-tablespaces/<oid>/" otherwise */
	char path[BK_TAR_PATH_MAX + 64];
	BkTreeEntry cur; /* the file being received */
	char *capture;   /* bytes of backup_label / tablespace_map */
	size_t capture_len;
	bool capturing;
	char *backup_label, *tablespace_map;
	uint64_t files, bytes;
} Ctx;

static int entry_start(void *ud, const BkTarEntry *t)
{
	Ctx *c = ud;
	if (!strcmp(t->path, "."))
		return 0;
	if (snprintf(c->path, sizeof(c->path), "%s%s", c->prefix, t->path) >= (int)sizeof(c->path))
		return bk_errorf(-ENAMETOOLONG, "%s: path too long", t->path);
	c->cur = (BkTreeEntry){
		.mode = t->mode,
		.uid = (uint32_t)t->uid,
		.gid = (uint32_t)t->gid,
		.mtime_sec = t->mtime,
	};
	c->capturing = !c->prefix[0] && t->type == BK_TAR_FILE && t->size <= SMALL_FILE_MAX &&
		       (!strcmp(t->path, "backup_label") || !strcmp(t->path, "tablespace_map"));
	c->capture_len = 0;
	if (c->capturing && !(c->capture = realloc(c->capture, (size_t)t->size + 1)))
		return -ENOMEM;
	switch (t->type) {
	case BK_TAR_FILE:
		c->cur.type = BK_NODE_FILE;
		break;
	case BK_TAR_DIR:
		c->cur.type = BK_NODE_DIR;
		break;
	case BK_TAR_SYMLINK:
		c->cur.type = BK_NODE_SYMLINK;
		if (!(c->cur.link = strdup(t->link)))
			return -ENOMEM;
		c->cur.size = strlen(t->link);
		break;
	default:
		return bk_errorf(BK_E_CORRUPT, "%s: hard links are not expected in a base backup", t->path);
	}
	return 0;
}

static int entry_data(void *ud, const void *buf, size_t len)
{
	Ctx *c = ud;
	if (c->capturing) {
		memcpy(c->capture + c->capture_len, buf, len);
		c->capture_len += len;
	}
	c->bytes += len;
	return bk_chunk_stream_push(c->stream, buf, len);
}

static int entry_end(void *ud, const BkTarEntry *t)
{
	Ctx *c = ud;
	if (!strcmp(t->path, "."))
		return 0;
	int e = 0;
	if (c->cur.type == BK_NODE_FILE) {
		e = bk_chunk_stream_finish(c->stream, &c->cur.content, &c->cur.size);
		c->files++;
		if (e == 0 && c->capturing) {
			c->capture[c->capture_len] = '\0';
			char **slot = !strcmp(t->path, "backup_label") ? &c->backup_label : &c->tablespace_map;
			free(*slot);
			*slot = strndup(c->capture, c->capture_len);
			if (!*slot)
				e = -ENOMEM;
		}
	}
	if (e == 0)
		e = bk_tree_builder_add(c->tree, c->path, &c->cur);
	else
		free(c->cur.link);
	c->cur = (BkTreeEntry){ 0 };
	return e;
}

static int archive_start(void *ud, const char *name, const char *spclocation)
{
	(void)spclocation;
	Ctx *c = ud;
	if (!strcmp(name, "base.tar")) {
		c->prefix[0] = '\0';
	} else {
		size_t n = strlen(name);
		if (n < 5 || n > 20 || strcmp(name + n - 4, ".tar") || strspn(name, "0123456789") != n - 4)
			return bk_errorf(BK_E_CORRUPT, "unexpected archive name '%s'", name);
		snprintf(c->prefix, sizeof(c->prefix), "%s/%.*s/", BK_TABLESPACE_DIR, (int)(n - 4), name);
	}
	static const BkTarCallbacks cb = { entry_start, entry_data, entry_end };
	bk_tar_parser_free(c->tar);
	c->tar = NULL;
	return bk_tar_parser_new(&cb, c, 0, &c->tar);
}

static int archive_data(void *ud, const void *buf, size_t len)
{
	Ctx *c = ud;
	return bk_tar_parser_push(c->tar, buf, len);
}

static int archive_end(void *ud, const char *name)
{
	Ctx *c = ud;
	int e = bk_tar_parser_finish(c->tar);
	if (e < 0)
		bk_error_wrap(e, "%s", name);
	return e;
}

static int progress(void *ud, uint64_t done, uint64_t total)
{
	Ctx *c = ud;
	if (c->o->progress)
		c->o->progress(c->o->progress_ud, done, total);
	return 0;
}

int bk_pg_basebackup(BkRepo *r, const BkBaseBackupOpts *o, uint8_t ret_snap[32])
{
	uint64_t started = bk_mono_us();
	if (!bk_cluster_name_valid(o->cluster))
		return bk_errorf(BK_E_USAGE, "invalid cluster name '%s'", o->cluster);
	Ctx c = { .repo = r, .o = o };
	BkPgRepl *conn = NULL;
	BkPgReplSystem sys;
	int e = bk_pgrepl_open(o->conninfo, &conn);
	if (e == 0)
		e = bk_pgrepl_identify_system(conn, &sys);
	if (e == 0)
		e = bk_cluster_claim(r, o->cluster, sys.sysid, 0);
	if (e == 0)
		e = bk_writer_new(r, &c.writer);
	/* relation files change in 8 KiB pages: a quarter of the repository's
	 * chunk size (16 KiB by default) keeps an incremental backup small */
	if (e == 0)
		e = bk_chunk_stream_new_sized(r, c.writer, BK_BASEBACKUP_CHUNK_DIVISOR, &c.stream);
	if (e == 0)
		e = bk_tree_builder_new(&c.tree);
	BkPgReplBackupResult res;
	if (e == 0) {
		BkPgReplBackupOptions bo = { .label = "bunker", .fast_checkpoint = o->fast_checkpoint };
		static const BkPgReplBackupCallbacks cb = { archive_start, archive_data, archive_end,
							    progress };
		e = bk_pgrepl_base_backup(conn, &bo, &cb, &c, &res);
	}
	uint8_t root[32];
	if (e == 0)
		e = bk_tree_builder_finish(c.tree, bk_writer_put, c.writer, root);

	char name[128], sysid[32], tli[16], stli[16], start[BK_WAL_LSN_MAX], stop[BK_WAL_LSN_MAX],
		version[16];
	if (e == 0) {
		snprintf(name, sizeof(name), "pg/%s/base", o->cluster);
		snprintf(sysid, sizeof(sysid), "%" PRIu64, sys.sysid);
		snprintf(tli, sizeof(tli), "%u", res.start_tli);
		snprintf(stli, sizeof(stli), "%u", res.end_tli);
		snprintf(version, sizeof(version), "%d", bk_pgrepl_server_version(conn));
		bk_wal_lsn_format(start, sizeof(start), res.start_lsn);
		bk_wal_lsn_format(stop, sizeof(stop), res.end_lsn);
		BkKv meta[] = {
			{ "system_identifier", sysid }, { "timeline", tli },
			{ "start_lsn", start },         { "stop_lsn", stop },
			{ "stop_timeline", stli },      { "server_version", version },
			{ "backup_label", c.backup_label ? c.backup_label : "" },
			{ "tablespace_map", c.tablespace_map ? c.tablespace_map : "" },
		};
		uint8_t parent[32];
		bool has_parent = bk_snapshot_resolve(r, "latest", name, parent) == 0;
	bk_error_clear(); /* no parent is not an error */
		BkArchiveOpts ao = {
			.name = name,
			.kind = "pg-base",
			.host = o->host,
			.meta = meta,
			.nmeta = BK_ARRAY_SIZE(meta),
			.parent = has_parent ? parent : NULL,
		};
		e = bk_archive_commit(r, c.writer, &ao, root, c.bytes, c.files, started, ret_snap);
	}
	bk_pgrepl_close(conn);
	bk_tar_parser_free(c.tar);
	bk_tree_builder_free(c.tree);
	bk_chunk_stream_free(c.stream);
	bk_writer_free(c.writer);
	free(c.cur.link);
	bk_content_node_release(&c.cur.content);
	free(c.capture);
	free(c.backup_label);
	free(c.tablespace_map);
	return e;
}
