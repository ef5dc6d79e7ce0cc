/* Fuzz target: bk_wal_walk and bk_wal_last_record over a whole WAL segment of
 * 1 MiB (see tests/fuzz/fuzz.h), with a carry from "the segment before".
 *
 * Input (all little-endian; a short input is zero-padded):
 *   off   0 u8  opts: bits 0-1 the carry's head (none, 8, 16, 24); bit 2 walk with a
 *               visitor; bit 3 fill the gap (below); bit 4 the visitor ends the walk
 *               at the third record; bits 5-6 the segment's name (names[]); bit 7
 *               set the CRCs of the records that lie whole in the first page
 *               (so that mutated records get past their CRC check)
 *   off   1 u64 carry lsn | 24 bytes carry hdr | u32 carry crc (0 unless head is 24,
 *               as for any carry bk_wal_record_decode gives) | u8 nbody (up to
 *               BK_WAL_RP_BODY) | BK_WAL_RP_BODY bytes body
 *   off 134 u32 fill_rem: xlp_rem_len of the gap's first page
 *   off 138 u32 head_len
 *   off 142 head_len bytes written at the segment's start, the rest at its end.
 * The segment is a 1 MiB memfd, zeros where the input puts nothing. With the fill
 * bit, each whole page of the gap between the two parts gets the short header
 * of a record that goes on across it (magic and timeline of the first page,
 * XLP_FIRST_IS_CONTRECORD, its page address, xlp_rem_len from fill_rem down by a
 * page's data each page) and 0x5A data, up to the page where that record ends:
 * so a short input reaches the segment's end, where records are cut and carried.
 *
 * Checks: the walk fails only when the first page header does not parse
 * (bk_wal_header_parse's code) or the visitor ends it; with or without a visitor
 * the end is the same; records are visited in WAL order, inside the segment (the
 * carried record first), the last one visited is the end's lsn, and the end's
 * xact_us is the latest transaction end visited whole here; the carry out is one
 * the WAL record format can store (head 0, 8, 16 or 24, CRC state 0 unless 24).
 *
 * The seed corpus (corpus/pg-walseg/) is written by this file built with
 * -DFUZZ_GEN_CORPUS (it then has a main() instead of being a fuzz target):
 *   cc -std=gnu11 -D_GNU_SOURCE -DFUZZ_GEN_CORPUS -I. tests/pg/fuzz-pg-walseg.c \
 *     tests/pg/walgen.c build/pg/libbkpg.a build/store/libbkbase.a -o /tmp/gen-walseg \
 *     && /tmp/gen-walseg tests/pg/corpus/pg-walseg */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pg/crc32c.h"
#include "pg/wal.h"
#include "store/error.h"
#include "store/util.h"
#include "tests/fuzz/fuzz.h"

#define SEG (1u << 20)
#define PRE 142
#define OPT_VISIT 0x04
#define OPT_FILL 0x08
#define OPT_CANCEL 0x10
#define OPT_CRC 0x80

static const char *const names[4] = { "000000010000000000000003", "000000010000000000000004",
				       "000000010000000000000004.partial", NULL };

typedef struct {
	uint8_t opts;
	bool has_prev;
	BkWalCarry prev;
	const char *name;
	uint8_t *seg; /* SEG bytes */
} Input;

/* Sets xl_crc of the records from the start of the first page (after the rest of
 * a record that began before) as far as they lie whole in it: a walk of their
 * lengths, not the walker's. */
static void set_crcs(uint8_t *seg)
{
	uint32_t blcksz = bk_get_le32(seg + 36);
	if (blcksz < 1024 || blcksz > 65536 || (blcksz & (blcksz - 1)))
		return;
	uint64_t pos = BK_WAL_LONG_HEADER_SIZE;
	if (bk_get_le16(seg + 2) & 0x0001)
		pos += bk_get_le32(seg + 16);
	for (pos = (pos + 7) & ~(uint64_t)7; pos + 24 <= blcksz; pos = (pos + 7) & ~(uint64_t)7) {
		uint32_t tot = bk_get_le32(seg + pos);
		if (tot < 24 || tot > blcksz - pos)
			return;
		uint32_t crc = bk_crc32c(bk_crc32c(0, seg + pos + 24, tot - 24), seg + pos, 20);
		bk_put_le32(seg + pos + 20, crc);
		pos += tot;
	}
}

/* Builds the segment and the carry from the input (seg: SEG bytes). */
static void build(const uint8_t *data, size_t size, uint8_t *seg, Input *in)
{
	uint8_t pre[PRE] = { 0 };
	memcpy(pre, data, size < PRE ? size : PRE);
	memset(in, 0, sizeof(*in));
	in->opts = pre[0];
	in->name = names[(pre[0] >> 5) & 3];
	static const uint8_t heads[4] = { 0, 8, 16, 24 };
	BkWalCarry *c = &in->prev;
	c->head = heads[pre[0] & 3];
	in->has_prev = c->head != 0;
	c->lsn = bk_get_le64(pre + 1);
	memcpy(c->hdr, pre + 9, c->head);
	c->crc = c->head == 24 ? bk_get_le32(pre + 33) : 0;
	c->nbody = pre[37] < BK_WAL_RP_BODY ? pre[37] : BK_WAL_RP_BODY;
	memcpy(c->body, pre + 38, c->nbody);
	uint32_t fill_rem = bk_get_le32(pre + 134);

	const uint8_t *p = size > PRE ? data + PRE : NULL;
	size_t n = size > PRE ? size - PRE : 0;
	size_t head = BK_MIN(BK_MIN((size_t)bk_get_le32(pre + 138), n), SEG);
	size_t tail = BK_MIN(n - head, SEG - head);
	memset(seg, 0, SEG);
	if (head)
		memcpy(seg, p, head);
	if (tail)
		memcpy(seg + SEG - tail, p + n - tail, tail);
	if (head < BK_WAL_LONG_HEADER_SIZE)
		return;
	if (in->opts & OPT_CRC)
		set_crcs(seg);
	if (!(in->opts & OPT_FILL))
		return;
	uint32_t blcksz = bk_get_le32(seg + 36);
	if (blcksz < 1024 || blcksz > 65536 || (blcksz & (blcksz - 1)))
		blcksz = 8192;
	uint64_t pageaddr = bk_get_le64(seg + 8);
	for (size_t at = (head + blcksz - 1) / blcksz * blcksz; at + blcksz <= SEG - tail;
	     at += blcksz) {
		uint8_t *h = seg + at;
		memcpy(h, seg, 2);     /* xlp_magic */
		bk_put_le16(h + 2, 0x0001);
		memcpy(h + 4, seg + 4, 4); /* xlp_tli */
		bk_put_le64(h + 8, pageaddr + at);
		bk_put_le32(h + 16, fill_rem);
		uint32_t data_len = blcksz - 24;
		memset(h + 24, 0x5a, BK_MIN(fill_rem, data_len));
		if (fill_rem <= data_len)
			break;
		fill_rem -= data_len;
	}
}

#ifndef FUZZ_GEN_CORPUS
typedef struct {
	int n;
	uint64_t pageaddr, prev_lsn, last;
	bool has_prev, cancel;
	int64_t xact_us; /* the latest transaction end visited, past the carried record */
} Visits;

static int on_rec(void *ud, const BkWalRec *r)
{
	Visits *v = ud;
	bool carried = v->n == 0 && v->has_prev && r->lsn == v->prev_lsn;
	if (!carried) {
		FUZZ_CHECK(r->lsn >= v->pageaddr + BK_WAL_LONG_HEADER_SIZE &&
			   r->lsn < v->pageaddr + SEG);
		FUZZ_CHECK(r->lsn % 8 == 0);
		FUZZ_CHECK(v->n == 0 || r->lsn > v->last);
		if ((r->xact_end || r->prepared_end) && r->xact_us > v->xact_us)
			v->xact_us = r->xact_us;
	}
	FUZZ_CHECK(!(r->xact_end && r->prepared_end));
	FUZZ_CHECK(!r->restore_point || (!r->unnamed && strlen(r->restore_point) < 64));
	FUZZ_CHECK(r->xact_us == 0 || r->xact_end || r->prepared_end);
	FUZZ_CHECK(r->prepared_xid == 0 || r->prepared_end);
	v->n++;
	v->last = r->lsn;
	return v->cancel && v->n == 3 ? -ECANCELED : 0;
}

static bool same_end(const BkWalEnd *a, const BkWalEnd *b)
{
	return a->lsn == b->lsn && a->xact_us == b->xact_us && a->cut_xact_us == b->cut_xact_us &&
	       a->cut_xact == b->cut_xact && a->stopped == b->stopped &&
	       a->carry.lsn == b->carry.lsn && a->carry.head == b->carry.head &&
	       a->carry.crc == b->carry.crc && memcmp(a->carry.hdr, b->carry.hdr, 24) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static uint8_t *seg;
	if (fd < 0) {
		fd = memfd_create("fuzz-walseg", 0);
		seg = malloc(SEG);
		FUZZ_CHECK(fd >= 0 && seg);
	}
	Input in;
	build(data, size, seg, &in);
	FUZZ_CHECK(pwrite(fd, seg, SEG, 0) == SEG);
	const BkWalCarry *prev = in.has_prev ? &in.prev : NULL;

	BkWalHeader h;
	int hr = bk_wal_header_parse(seg, BK_WAL_LONG_HEADER_SIZE, in.name, &h);
	BkWalEnd end, end2;
	memset(&end, 0x5a, sizeof(end));
	int r = bk_wal_last_record(fd, in.name, prev, &end);
	FUZZ_CHECK(r == hr);
	if (r < 0)
		return 0;
	FUZZ_CHECK(end.lsn == 0 || (prev && end.lsn == prev->lsn) ||
		   (end.lsn >= h.pageaddr + BK_WAL_LONG_HEADER_SIZE && end.lsn < h.pageaddr + SEG));
	FUZZ_CHECK(end.xact_us == 0 || end.lsn != 0);
	const BkWalCarry *c = &end.carry;
	FUZZ_CHECK(c->head == 0 || c->head == 8 || c->head == 16 || c->head == 24);
	FUZZ_CHECK(c->head == 24 || c->crc == 0);
	FUZZ_CHECK(c->nbody == 0); /* only for a visitor */
	FUZZ_CHECK(c->head == 0 || (prev && c->lsn == prev->lsn) ||
		   (c->lsn >= h.pageaddr + BK_WAL_LONG_HEADER_SIZE && c->lsn < h.pageaddr + SEG));
	FUZZ_CHECK(!end.stopped || c->head == 0);
	FUZZ_CHECK(!(end.cut_xact && end.cut_xact_us));
	FUZZ_CHECK(!end.cut_xact_us || c->head == 24);

	if (!(in.opts & OPT_VISIT))
		return 0;
	Visits v = { .pageaddr = h.pageaddr, .has_prev = prev != NULL,
		     .prev_lsn = prev ? prev->lsn : 0, .cancel = in.opts & OPT_CANCEL };
	r = bk_wal_walk(fd, in.name, prev, on_rec, &v, &end2);
	if (v.cancel && v.n == 3) {
		static const BkWalEnd none;
		FUZZ_CHECK(r == -ECANCELED && memcmp(&end2, &none, sizeof(none)) == 0);
		return 0;
	}
	FUZZ_CHECK(r == 0);
	FUZZ_CHECK(same_end(&end, &end2));
	FUZZ_CHECK(v.n == 0 ? end.lsn == 0 : end.lsn == v.last);
	FUZZ_CHECK(end.xact_us == v.xact_us);
	FUZZ_CHECK(end2.carry.nbody <= BK_WAL_RP_BODY);
	return 0;
}

#else /* FUZZ_GEN_CORPUS: writes the seeds */
#include <stdio.h>
#include <sys/stat.h>

#include "pg/crc32c.h"
#include "tests/pg/walgen.h"

#define MB SEG

/* Segments 3 and 4 of a 1 MiB-segment WAL (tests/pg/walgen.h), each record with
 * an xl_xid of its own. */
typedef WalGen Gen;

static void gen_restore_point(Gen *g, const char *name)
{
	uint8_t body[74] = { 255, 72 };
	bk_put_le64(body + 2, 12345);
	snprintf((char *)body + 10, 64, "%s", name);
	walgen_record_body(g, 24 + sizeof(body), 0, 0x70, body, sizeof(body));
}

static void gen_commit(Gen *g, uint8_t info, int64_t pg_us)
{
	uint8_t body[34] = { 255, 32 };
	bk_put_le64(body + 2, (uint64_t)pg_us);
	walgen_record_body(g, 24 + sizeof(body), 1, info, body, sizeof(body));
}

/* A COMMIT PREPARED of PostgreSQL 15: long main data, xinfo with dbinfo, two
 * subtransactions, the two-phase xid and a GID. */
static void gen_prepared(Gen *g, uint32_t xid)
{
	uint8_t body[5 + 8 + 4 + 8 + 4 + 8 + 4 + 4] = { 254 };
	uint8_t *d = body + 5;
	size_t n = 0;
	bk_put_le64(d, 123456789);
	bk_put_le32(d + 8, (1u << 4) | (1u << 0) | (1u << 1) | (1u << 7));
	n = 12 + 8;
	bk_put_le32(d + n, 2);
	n += 4 + 8;
	bk_put_le32(d + n, xid);
	n += 4;
	memcpy(d + n, "gx", 3);
	n += 3;
	bk_put_le32(body + 1, (uint32_t)n);
	walgen_record_body(g, (uint32_t)(24 + 5 + n), 1, 0x30 | 0x80, body, 5 + n);
}

/* Writes the input that builds segment `which` (0: 3, 1: 4) of g from its first
 * head bytes, the gap filled from `fill_at` (0: no fill) and its last tail bytes,
 * and checks that build() gives the segment back. */
static void put_seg(const char *name, Gen *g, int which, const BkWalCarry *prev, uint8_t opts,
		    size_t head, size_t fill_at, size_t tail)
{
	const uint8_t *s = g->seg + (size_t)which * MB;
	static uint8_t in[PRE + 2 * MB], back[MB];
	memset(in, 0, PRE);
	in[0] = (uint8_t)(opts | (fill_at ? OPT_FILL : 0) | (which << 5));
	if (prev) {
		in[0] |= (uint8_t)(prev->head / 8);
		bk_put_le64(in + 1, prev->lsn);
		memcpy(in + 9, prev->hdr, 24);
		bk_put_le32(in + 33, prev->crc);
		in[37] = prev->nbody;
		memcpy(in + 38, prev->body, prev->nbody);
	}
	if (fill_at)
		bk_put_le32(in + 134, bk_get_le32(s + fill_at + 16));
	bk_put_le32(in + 138, (uint32_t)head);
	memcpy(in + PRE, s, head);
	memcpy(in + PRE + head, s + MB - tail, tail);
	Input x;
	build(in, PRE + head + tail, back, &x);
	if (memcmp(back, s, MB) != 0) {
		fprintf(stderr, "%s: the input does not build the segment\n", name);
		fuzz_failures++;
	}
	fuzz_put(name, in, PRE + head + tail);
}

static int no_op(void *ud, const BkWalRec *r)
{
	(void)ud;
	(void)r;
	return 0;
}

/* Segment 3's carry, from a walk with a visitor (the carry then holds the body of
 * a restore point or transaction end it cuts) or without (as wal-push's). */
static int carry_of(Gen *g, bool visit, BkWalCarry *ret)
{
	int fd = memfd_create("gen-walseg", 0);
	BkWalEnd end;
	int e = fd >= 0 && write(fd, g->seg, MB) == MB ? bk_wal_walk(fd, names[0], NULL, visit ? no_op : NULL, NULL, &end)
						       : -EIO;
	if (fd >= 0)
		close(fd);
	if (e == 0)
		*ret = end.carry;
	if (e < 0 || !end.carry.head) {
		fprintf(stderr, "segment 3 carries nothing\n");
		fuzz_failures++;
		return -1;
	}
	return 0;
}

/* Fills segment 3 with records up to `before_end` bytes before its end: one
 * from its first page to 200 bytes into its last page (what the fill makes of a
 * gap), then one that ends there. */
static void gen_end_at(Gen *g, uint64_t before_end)
{
	walgen_record(g, 100, 10, 0);
	uint64_t at = (g->pos + 7) & ~(uint64_t)7;
	walgen_record(g, (uint32_t)((8192 - at) + 126 * (8192 - 24) + 176), 10, 0);
	at = (g->pos + 7) & ~(uint64_t)7;
	walgen_record(g, (uint32_t)(MB - before_end - at), 10, 0);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s corpus/pg-walseg\n", argv[0]);
		return 2;
	}
	fuzz_out_dir = argv[1];
	mkdir(fuzz_out_dir, 0777);
	static Gen g = { .vary_xid = true };
	BkWalCarry c;

	/* records of every kind the walk reads, then a switch */
	walgen_start(&g, 7301234567890123456ull, 100);
	walgen_record(&g, 50, 10, 0);
	gen_restore_point(&g, "before-upgrade");
	gen_commit(&g, 0x00, 800000000000000);
	gen_commit(&g, 0x20, 800000000500000);
	gen_prepared(&g, 1234);
	walgen_record(&g, 200, 10, 0);
	walgen_record(&g, 20000, 10, 0);
	walgen_record(&g, 32, 0, 0x40);
	put_seg("switch-visit", &g, 0, NULL, OPT_VISIT, 32768, 0, 0);
	put_seg("switch-last", &g, 0, NULL, 0, 32768, 0, 0);
	put_seg("switch-cancel", &g, 0, NULL, OPT_VISIT | OPT_CANCEL, 32768, 0, 0);
	put_seg("switch-visit-crc", &g, 0, NULL, OPT_VISIT | OPT_CRC, 32768, 0, 0);

	/* zeros after a record: the walk stops short */
	walgen_start(&g, 7301234567890123456ull, 0);
	walgen_record(&g, 60, 10, 0);
	gen_commit(&g, 0x00, 800000000000000);
	put_seg("zeros-stopped", &g, 0, NULL, OPT_VISIT, 8192, 0, 0);

	/* one record from the first page across the whole segment into the next:
	 * cut at the end after its header (carry head 24), then its rest in
	 * segment 4 with the carry */
	walgen_start(&g, 7301234567890123456ull, 0);
	walgen_record(&g, 100, 10, 0);
	walgen_record(&g, MB + 4000, 10, 0);
	walgen_record(&g, 64, 0, 0x70);
	gen_restore_point(&g, "after");
	put_seg("cut-across-24", &g, 0, NULL, OPT_VISIT, 8192, 8192, 8192);
	if (carry_of(&g, false, &c) == 0)
		put_seg("cont-24", &g, 1, &c, OPT_VISIT, 16384, 0, 0);

	/* a restore point cut in its body at the segment's end (its header and 16
	 * bytes of its body there), then its rest in segment 4 with the carry */
	walgen_start(&g, 7301234567890123456ull, 0);
	gen_end_at(&g, 40);
	gen_restore_point(&g, "cut");
	walgen_record(&g, 40, 10, 0);
	put_seg("rp-cut-visit", &g, 0, NULL, OPT_VISIT, 8192, 8192, 8192);
	if (carry_of(&g, true, &c) == 0)
		put_seg("rp-cont-named", &g, 1, &c, OPT_VISIT, 8192, 0, 0);
	if (carry_of(&g, false, &c) == 0) {
		put_seg("rp-cont-unnamed", &g, 1, &c, OPT_VISIT, 8192, 0, 0);
		c.crc ^= 1;
		put_seg("rp-cont-bad-crc", &g, 1, &c, OPT_VISIT, 8192, 0, 0);
	}

	/* a record whose header the segment's end cuts after 8 and after 16 bytes */
	for (int k = 8; k <= 16; k += 8) {
		walgen_start(&g, 7301234567890123456ull, 0);
		gen_end_at(&g, (uint64_t)k);
		gen_commit(&g, 0x00, 800000000000000);
		walgen_record(&g, 100, 10, 0);
		char nm[64];
		snprintf(nm, sizeof(nm), "header-cut-%d", k);
		put_seg(nm, &g, 0, NULL, OPT_VISIT, 8192, 8192, 8192);
		if (carry_of(&g, false, &c) == 0) {
			snprintf(nm, sizeof(nm), "header-cont-%d", k);
			put_seg(nm, &g, 1, &c, OPT_VISIT, 8192, 0, 0);
		}
	}

	/* a switch whose 24 bytes the end cuts after 16: segment 4 is used up */
	walgen_start(&g, 7301234567890123456ull, 0);
	gen_end_at(&g, 16);
	walgen_record(&g, 24, 0, 0x40);
	if (carry_of(&g, false, &c) == 0)
		put_seg("switch-tail-cont", &g, 1, &c, OPT_VISIT, 8192, 0, 0);
	put_seg("switch-tail-no-carry", &g, 1, NULL, OPT_VISIT, 8192, 0, 0);

	/* a record that spans segment 4 whole: its carry goes on past it too */
	walgen_start(&g, 7301234567890123456ull, 0);
	walgen_record(&g, 100, 10, 0);
	walgen_record(&g, 3 * MB, 10, 0);
	if (carry_of(&g, false, &c) == 0)
		put_seg("span-whole-segment", &g, 1, &c, OPT_VISIT, 8192, 8192, 8192);

	/* a commit whose header ends the segment (its time is in the next one), and
	 * a COMMIT PREPARED cut in its body, then its rest with a visitor's carry */
	walgen_start(&g, 7301234567890123456ull, 0);
	gen_end_at(&g, 24);
	gen_commit(&g, 0x00, 800000000000000);
	put_seg("commit-cut-after-header", &g, 0, NULL, 0, 8192, 8192, 8192);
	walgen_start(&g, 7301234567890123456ull, 0);
	gen_end_at(&g, 48);
	gen_prepared(&g, 4321);
	walgen_record(&g, 100, 10, 0);
	put_seg("prepared-cut-visit", &g, 0, NULL, OPT_VISIT, 8192, 8192, 8192);
	if (carry_of(&g, true, &c) == 0)
		put_seg("prepared-cont-visit", &g, 1, &c, OPT_VISIT, 8192, 0, 0);

	/* a record that ends exactly at the segment's end */
	walgen_start(&g, 7301234567890123456ull, 0);
	gen_end_at(&g, 0);
	put_seg("ends-at-segment-end", &g, 0, NULL, OPT_VISIT, 8192, 8192, 8192);

	/* a page that is not this segment's (a recycled file's stale page) */
	walgen_start(&g, 7301234567890123456ull, 0);
	walgen_record(&g, 9000, 10, 0);
	walgen_record(&g, 100, 10, 0);
	bk_put_le64(g.seg + 8192 + 8, 99 * MB);
	put_seg("stale-page", &g, 0, NULL, OPT_VISIT, 16384, 0, 0);
	return fuzz_failures ? 1 : 0;
}
#endif
