/* Content-defined chunking with a keyed gear table (FastCDC with normalized
 * chunking). The gear table comes from the phone's gear subkey, so chunk
 * boundaries, and with them chunk sizes, reveal nothing a host could match
 * against known files. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "agent/util/fsutil.h"

#include "peerback/error.h"
#include "peerback/store.h"
#include "agent/backup/internal.h"
#include "agent/backup/stream.h"

/* Before the average size a cut needs 22 zero bits (harder), after it 18
 * (easier): sizes cluster around the average. The gear hash shifts left, so
 * the top bits depend on the most input bytes. */
#define MASK_S (~0ull << (64 - 22))
#define MASK_L (~0ull << (64 - 18))
#define READ_BLOCK (1u << 20)
/* pb_cdc_file's buffer: chunks are cut from an offset into it, and what is
 * left is moved to its front only when it is full, so a byte is moved at
 * most once (cutting at the front of a PB_CDC_MAX buffer moved each byte
 * about three times: a 1 MiB cut moved the 3 MiB behind it). */
#define FILE_BUF PB__CDC_FILE_BUF

void pb_cdc_init(pb_cdc_t *cdc, const pb_backup_keys_t *keys)
{
	static const uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
	uint8_t bytes[sizeof(cdc->gear)];
	size_t i;

	if (sodium_init() < 0)
		abort();
	crypto_stream_chacha20(bytes, sizeof(bytes), nonce, keys->gear);
	for (i = 0; i < 256; i++) {
		uint64_t v = 0;
		int j;

		for (j = 7; j >= 0; j--)
			v = v << 8 | bytes[i * 8 + (size_t)j];
		cdc->gear[i] = v;
	}
	sodium_memzero(bytes, sizeof(bytes));
}

void pb_cdc_wipe(pb_cdc_t *cdc)
{
	if (cdc != NULL)
		sodium_memzero(cdc, sizeof(*cdc));
}

/* The gear hash from buf[i] to buf[end - 1], continuing *fp: the position
 * after the first byte at which fp's top bits (those of the mask) are all
 * zero, or 0 if none (a cut is never at 0). Zero top bits is fp below the
 * mask's lowest bit: one compare a byte instead of a mask and a test (a
 * third more bytes a second on this machine, the same cuts). */
static size_t gear_scan_one(const uint64_t gear[256], const uint8_t *buf, size_t i, size_t end, uint64_t *fp,
			    uint64_t below)
{
	uint64_t f = *fp;

	for (; i < end; i++) {
		f = (f << 1) + gear[buf[i]];
		if (f < below)
			return i + 1;
	}
	*fp = f;
	return 0;
}

/* The hash after a byte depends on the 64 bytes up to it only (each
 * shifts one bit further out), once 64 were hashed since fp was 0: so a
 * stretch of ROUND bytes is hashed as four lanes of LANE bytes at once,
 * lanes 1 to 3 started from the 64 bytes before theirs, each an
 * independent chain (the one-byte loop waits a shift and an add for each
 * byte). A round with a hit is hashed again byte by byte from its start,
 * which finds the first hit and leaves fp as before. */
#define LANE 4096
#define ROUND (4 * LANE)

static uint64_t gear_warm(const uint64_t gear[256], const uint8_t *p)
{
	uint64_t f = 0;

	for (size_t k = 0; k < 64; k++)
		f = (f << 1) + gear[p[k]];
	return f;
}

/* As gear_scan_one; i is at least the position where fp was 0 (the
 * callers start at the chunk's minimum size with fp 0, and go on from
 * where they stopped). */
static size_t gear_scan(const uint64_t gear[256], const uint8_t *buf, size_t i, size_t end, uint64_t *fp,
			uint64_t mask)
{
	const uint64_t below = ~mask + 1; /* the mask's lowest bit */

	while (i < end && end - i >= ROUND) {
		const uint8_t *p0 = buf + i, *p1 = p0 + LANE, *p2 = p1 + LANE, *p3 = p2 + LANE;
		/* Lanes 1 to 3 start 64 bytes back: at least LANE bytes
		 * after i, so within what was hashed since fp was 0. */
		uint64_t f0 = *fp, f1 = gear_warm(gear, p1 - 64), f2 = gear_warm(gear, p2 - 64),
			 f3 = gear_warm(gear, p3 - 64);
		bool hit = false;

		for (size_t j = 0; j < LANE; j++) {
			f0 = (f0 << 1) + gear[p0[j]];
			f1 = (f1 << 1) + gear[p1[j]];
			f2 = (f2 << 1) + gear[p2[j]];
			f3 = (f3 << 1) + gear[p3[j]];
			if ((f0 < below) | (f1 < below) | (f2 < below) | (f3 < below)) {
				hit = true;
				break;
			}
		}
		if (hit)
			break; /* the first hit is in this round */
		*fp = f3;
		i += ROUND;
	}
	return gear_scan_one(gear, buf, i, end, fp, below);
}

/* Cuts with the normalized masks: the harder one from min to the average
 * size, the easier one from there to max. */
static size_t cut_sized(const pb_cdc_t *cdc, const uint8_t *buf, size_t len, bool eof, size_t min, size_t avg,
			size_t max, uint64_t mask_s, uint64_t mask_l)
{
	size_t n = len < max ? len : max;
	size_t normal = n < avg ? n : avg;
	uint64_t fp = 0;
	size_t at;

	if (len <= min)
		return eof ? len : 0;
	if (min < normal && (at = gear_scan(cdc->gear, buf, min, normal, &fp, mask_s)) != 0)
		return at;
	if ((at = gear_scan(cdc->gear, buf, min > normal ? min : normal, n, &fp, mask_l)) != 0)
		return at;
	if (n == max || eof)
		return n;
	return 0;
}

size_t pb_cdc_cut(const pb_cdc_t *cdc, const uint8_t *buf, size_t len, bool eof)
{
	return cut_sized(cdc, buf, len, eof, PB_CDC_MIN, PB_CDC_AVG, PB_CDC_MAX, MASK_S, MASK_L);
}

/* pb_cdc_cut as the bytes come: the scan goes on from at (where the
 * last call stopped, with its gear hash) instead of from the chunk's
 * start, so a reader may hand over a file's bytes a block at a time with
 * no look-ahead of PB_CDC_MAX and no byte scanned twice. The cuts are
 * pb_cdc_cut's: the same scan with the same masks, only split. */
size_t pb__cdc_cut_more(const pb_cdc_t *cdc, const uint8_t *buf, size_t len, bool eof, pb__cdc_at_t *at)
{
	size_t n = len < PB_CDC_MAX ? len : PB_CDC_MAX;
	size_t pos = at->pos < PB_CDC_MIN ? PB_CDC_MIN : at->pos;
	uint64_t fp = at->fp;
	size_t end, cut;

	if (len <= PB_CDC_MIN)
		return eof ? len : 0;
	if (pos < PB_CDC_AVG) {
		end = n < PB_CDC_AVG ? n : PB_CDC_AVG;
		if (pos < end && (cut = gear_scan(cdc->gear, buf, pos, end, &fp, MASK_S)) != 0)
			goto out_cut;
		if (pos < end)
			pos = end;
	}
	if (pos >= PB_CDC_AVG && pos < n) {
		if ((cut = gear_scan(cdc->gear, buf, pos, n, &fp, MASK_L)) != 0)
			goto out_cut;
		pos = n;
	}
	if (n == PB_CDC_MAX || eof) {
		cut = n;
		goto out_cut;
	}
	at->pos = pos;
	at->fp = fp;
	return 0;

out_cut:
	/* The next chunk starts afresh. */
	at->pos = 0;
	at->fp = 0;
	return cut;
}

/* The same cut with the sizes of a chat stream (agent/backup/stream.h):
 * 15 zero bits before the average, 11 after. */
#define MASK_SS (~0ull << (64 - 15))
#define MASK_SL (~0ull << (64 - 11))

size_t pb__cdc_cut_stream(const pb_cdc_t *cdc, const uint8_t *buf, size_t len, bool eof)
{
	return cut_sized(cdc, buf, len, eof, PB_STREAM_MIN, PB_STREAM_AVG, PB_STREAM_MAX, MASK_SS, MASK_SL);
}

/* A large chat's stream: 17 zero bits before the average, 13 after. */
#define MASK_LS (~0ull << (64 - 17))
#define MASK_LL (~0ull << (64 - 13))

size_t pb__cdc_cut_stream_large(const pb_cdc_t *cdc, const uint8_t *buf, size_t len, bool eof)
{
	return cut_sized(cdc, buf, len, eof, PB_STREAM_L_MIN, PB_STREAM_L_AVG, PB_STREAM_L_MAX, MASK_LS, MASK_LL);
}

/* The chunks cut since the buffer last moved, given to the callback at
 * once before it moves again (or at the end). */
struct cut_list {
	const uint8_t *data[PB__CDC_CUTS_MAX];
	size_t len[PB__CDC_CUTS_MAX];
	size_t n;
};

static int cuts_flush(struct cut_list *c, pb__cdc_chunks_cb cb, void *arg)
{
	size_t n = c->n;

	c->n = 0;
	return n > 0 ? cb(arg, c->data, c->len, n) : 0;
}

/* pb_cdc_file with the caller's buffer of PB__CDC_FILE_BUF bytes, kept
 * over many files: a fresh one of 8 MiB is mapped (and faulted in page by
 * page) anew for each. */
int pb__cdc_file_many(const pb_cdc_t *cdc, int fd, uint8_t *buf, pb__cdc_chunks_cb cb, void *arg)
{
	struct cut_list cuts;
	struct stat sb;
	size_t have = 0, off = 0;
	bool eof = false;
	int rc = 0;

	if (cdc == NULL || cb == NULL || buf == NULL)
		return PB_EINVAL;
	if (fstat(fd, &sb) < 0)
		return -errno;
	cuts.n = 0;
	if (S_ISREG(sb.st_mode) && (uint64_t)sb.st_size < PB_CDC_WHOLE_MAX) {
		/* Small items are one chunk, whatever their content. */
		ssize_t r = pb__read_full(fd, buf, PB_CDC_WHOLE_MAX);

		if (r < 0)
			return -errno;
		if ((size_t)r < PB_CDC_WHOLE_MAX) {
			cuts.data[0] = buf;
			cuts.len[0] = (size_t)r;
			cuts.n = 1;
			return cuts_flush(&cuts, cb, arg);
		}
		/* The file grew meanwhile: chunk it like a large one. */
		have = (size_t)r;
	}
	for (;;) {
		size_t cut;

		if (!eof && have - off < PB_CDC_MAX) {
			size_t want;
			ssize_t r;

			if (have == FILE_BUF) {
				/* The chunks cut so far go before their
				 * bytes move. */
				if ((rc = cuts_flush(&cuts, cb, arg)) != 0)
					return rc;
				memmove(buf, buf + off, have - off);
				have -= off;
				off = 0;
			}
			want = FILE_BUF - have;
			if (want > READ_BLOCK)
				want = READ_BLOCK;
			r = pb__read_full(fd, buf + have, want);
			if (r < 0)
				return -errno;
			eof = (size_t)r < want;
			have += (size_t)r;
			continue;
		}
		if (have == off)
			break;
		cut = pb_cdc_cut(cdc, buf + off, have - off, eof);
		if (cuts.n == PB__CDC_CUTS_MAX && (rc = cuts_flush(&cuts, cb, arg)) != 0)
			return rc;
		cuts.data[cuts.n] = buf + off;
		cuts.len[cuts.n++] = cut;
		off += cut;
	}
	return cuts_flush(&cuts, cb, arg);
}

/* One chunk at a time, for pb_cdc_file's callback. */
struct one_by_one {
	pb_cdc_chunk_cb cb;
	void *arg;
};

static int each_chunk(void *arg, const uint8_t *const *data, const size_t *len, size_t n)
{
	struct one_by_one *o = arg;
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++)
		rc = o->cb(o->arg, data[i], len[i]);
	return rc;
}

int pb__cdc_file_buf(const pb_cdc_t *cdc, int fd, uint8_t *buf, pb_cdc_chunk_cb cb, void *arg)
{
	struct one_by_one o = { cb, arg };

	if (cb == NULL)
		return PB_EINVAL;
	return pb__cdc_file_many(cdc, fd, buf, each_chunk, &o);
}

int pb_cdc_file(const pb_cdc_t *cdc, int fd, pb_cdc_chunk_cb cb, void *arg)
{
	uint8_t *buf = malloc(FILE_BUF);
	int rc;

	if (buf == NULL)
		return PB_ENOMEM;
	rc = pb__cdc_file_buf(cdc, fd, buf, cb, arg);
	free(buf);
	return rc;
}
