#include "tests/pg/walgen.h"

#include <string.h>

#include "pg/crc32c.h"
#include "store/util.h"

#define MB WALGEN_MB

void walgen_header(uint8_t *b, uint16_t magic, uint16_t info, uint32_t tli, uint64_t pageaddr,
		   uint64_t sysid, uint32_t seg_size, uint32_t blcksz)
{
	memset(b, 0, 64);
	bk_put_le16(b, magic);
	bk_put_le16(b + 2, info);
	bk_put_le32(b + 4, tli);
	bk_put_le64(b + 8, pageaddr);
	bk_put_le32(b + 16, 0);
	bk_put_le64(b + 24, sysid);
	bk_put_le32(b + 32, seg_size);
	bk_put_le32(b + 36, blcksz);
}

static void long_header(WalGen *g, uint8_t *b, uint16_t info)
{
	walgen_header(b, 0xD110, info, 1, g->base + (uint64_t)(b - g->seg), g->sysid, MB, 8192);
}

void walgen_put(WalGen *g, const uint8_t *data, size_t n, size_t left)
{
	for (size_t i = 0; i < n && g->pos < sizeof(g->seg); i++, left--) {
		if (g->pos % 8192 == 0) {
			uint8_t *h = g->seg + g->pos;
			bool seg_start = g->pos % MB == 0;
			if (seg_start)
				long_header(g, h, 0x0002);
			bk_put_le16(h, 0xD110);
			bk_put_le16(h + 2, seg_start ? 0x0003 : 0x0001);
			bk_put_le32(h + 4, 1);
			bk_put_le64(h + 8, g->base + g->pos);
			bk_put_le32(h + 16, (uint32_t)left);
			g->pos += seg_start ? 40 : 24;
		}
		g->seg[g->pos++] = data ? data[i] : 0x5A;
	}
}

void walgen_seal(WalGen *g, uint64_t lsn)
{
	static uint8_t rec[2 * MB];
	size_t at[24]; /* where the header's bytes are */
	uint64_t p = lsn - g->base, tot = 24;
	for (uint64_t i = 0; i < tot; i++, p++) {
		if (p % 8192 == 0)
			p += p % MB == 0 ? 40 : 24;
		if (p >= sizeof(g->seg))
			return;
		rec[i] = g->seg[p];
		if (i < 24)
			at[i] = p;
		if (i == 3)
			tot = bk_get_le32(rec);
	}
	uint32_t crc = bk_crc32c(bk_crc32c(0, rec + 24, tot - 24), rec, 20);
	for (int i = 0; i < 4; i++)
		g->seg[at[20 + i]] = (uint8_t)(crc >> (8 * i));
}

uint64_t walgen_record_body(WalGen *g, uint32_t tot_len, uint8_t rmid, uint8_t info,
			    const uint8_t *body, size_t nb)
{
	g->pos = (g->pos + 7) & ~(uint64_t)7;
	if (g->pos % MB == 0) { /* the next segment's, with no continuation */
		long_header(g, g->seg + g->pos, 0x0002);
		g->pos += 40;
	} else if (g->pos % 8192 == 0) { /* a page header with no continuation */
		uint8_t *h = g->seg + g->pos;
		bk_put_le16(h, 0xD110);
		bk_put_le32(h + 4, 1);
		bk_put_le64(h + 8, g->base + g->pos);
		g->pos += 24;
	}
	uint64_t lsn = g->base + g->pos;
	uint8_t hdr[24] = { 0 };
	bk_put_le32(hdr, tot_len);
	if (g->vary_xid)
		bk_put_le32(hdr + 4, 700 + (uint32_t)(g->pos % 1000));
	bk_put_le64(hdr + 8, g->prev);
	hdr[16] = info;
	hdr[17] = rmid;
	walgen_put(g, hdr, sizeof(hdr), tot_len);
	walgen_put(g, body, nb, tot_len - 24);
	walgen_put(g, NULL, tot_len - 24 - nb, tot_len - 24 - nb);
	walgen_seal(g, lsn);
	g->prev = lsn;
	return lsn;
}

uint64_t walgen_record(WalGen *g, uint32_t tot_len, uint8_t rmid, uint8_t info)
{
	return walgen_record_body(g, tot_len, rmid, info, NULL, 0);
}

void walgen_start(WalGen *g, uint64_t sysid, uint32_t cont)
{
	memset(g->seg, 0, sizeof(g->seg));
	g->sysid = sysid;
	g->base = 3 * MB;
	long_header(g, g->seg, 0x0002 | (cont ? 0x0001 : 0));
	bk_put_le32(g->seg + 16, cont);
	g->pos = 40;
	g->prev = g->base - 4096; /* a record of the segment before */
	walgen_put(g, NULL, cont, cont);
}
