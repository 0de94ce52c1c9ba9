/* Sequence sets: parse, resolve "*", test membership, iterate and format. */
#include "imap/seqset.h"

#include <stdlib.h>
#include <string.h>

static void push(struct imap_seqset *set, uint32_t lo, uint32_t hi)
{
	if (set->count == set->cap) {
		set->cap = set->cap ? set->cap * 2 : 8;
		set->ranges = xrealloc(set->ranges, set->cap * sizeof(*set->ranges));
	}
	set->ranges[set->count].lo = lo;
	set->ranges[set->count].hi = hi;
	set->count++;
}

static bool is_star_range(const struct imap_seq_range *r)
{
	return r->hi == IMAP_SEQ_STAR;
}

static int cmp_range(const void *a, const void *b)
{
	const struct imap_seq_range *x = a, *y = b;
	bool sx = is_star_range(x), sy = is_star_range(y);
	if (sx != sy)
		return sx ? 1 : -1;
	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	return 0;
}

void imap_seqset_normalize(struct imap_seqset *set)
{
	if (set->count > 1)
		qsort(set->ranges, set->count, sizeof(*set->ranges), cmp_range);
	size_t out = 0;
	for (size_t i = 0; i < set->count; i++) {
		struct imap_seq_range r = set->ranges[i];
		if (out > 0) {
			struct imap_seq_range *last = &set->ranges[out - 1];
			if (is_star_range(&r)) {
				if (is_star_range(last) && last->lo == r.lo)
					continue;
			} else if ((uint64_t)r.lo <= (uint64_t)last->hi + 1) {
				if (r.hi > last->hi)
					last->hi = r.hi;
				continue;
			}
		}
		set->ranges[out++] = r;
	}
	set->count = out;
	set->sorted = true;
}

void imap_seqset_free(struct imap_seqset *set)
{
	free(set->ranges);
	memset(set, 0, sizeof(*set));
}

/* seq-number: nz-number / "*". Returns the number of bytes read, 0 on bad input. */
static size_t parse_number(const char *s, size_t len, unsigned flags, uint32_t *n_r,
			   const char **error_r)
{
	if (len > 0 && s[0] == '*') {
		if (!(flags & IMAP_SEQSET_ALLOW_STAR)) {
			*error_r = "\"*\" not allowed in this set";
			return 0;
		}
		*n_r = IMAP_SEQ_STAR;
		return 1;
	}
	if (len == 0 || s[0] < '1' || s[0] > '9') {
		*error_r = "Invalid number in sequence set";
		return 0;
	}
	uint64_t v = 0;
	size_t i = 0;
	while (i < len && s[i] >= '0' && s[i] <= '9') {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > UINT32_MAX) {
			*error_r = "Number in sequence set too big";
			return 0;
		}
		i++;
	}
	*n_r = (uint32_t)v;
	return i;
}

int imap_seqset_parse(struct imap_seqset *set, const char *s, size_t len, size_t max_ranges,
		      unsigned flags, const char **error_r)
{
	memset(set, 0, sizeof(*set));
	if (len == 1 && s[0] == '$') {
		if (!(flags & IMAP_SEQSET_ALLOW_LAST)) {
			*error_r = "\"$\" not allowed here";
			return -1;
		}
		set->last_result = true;
		set->sorted = true;
		return 0;
	}
	size_t i = 0, elements = 0;
	for (;;) {
		if (i < len && s[i] == '$') {
			*error_r = "\"$\" cannot be combined with other numbers";
			goto fail;
		}
		if (++elements > max_ranges) {
			*error_r = "Too many ranges in sequence set";
			goto fail;
		}
		uint32_t a, b;
		size_t n = parse_number(s + i, len - i, flags, &a, error_r);
		if (n == 0)
			goto fail;
		i += n;
		b = a;
		if (i < len && s[i] == ':') {
			i++;
			n = parse_number(s + i, len - i, flags, &b, error_r);
			if (n == 0)
				goto fail;
			i += n;
		}
		/* "*:4" is "4:*"; "*:*" is "*". */
		if (a == IMAP_SEQ_STAR)
			push(set, b, IMAP_SEQ_STAR);
		else if (b == IMAP_SEQ_STAR)
			push(set, a, IMAP_SEQ_STAR);
		else
			push(set, a < b ? a : b, a < b ? b : a);
		if (i == len)
			break;
		if (s[i] != ',') {
			*error_r = "Invalid character in sequence set";
			goto fail;
		}
		i++;
	}
	imap_seqset_normalize(set);
	return 0;
fail:
	imap_seqset_free(set);
	return -1;
}

bool imap_seqset_has_star(const struct imap_seqset *set)
{
	for (size_t i = 0; i < set->count; i++)
		if (is_star_range(&set->ranges[i]))
			return true;
	return false;
}

/* The concrete range a star range stands for. */
static void star_bounds(const struct imap_seq_range *r, uint32_t star, uint32_t *lo_r,
			uint32_t *hi_r)
{
	uint32_t a = r->lo == IMAP_SEQ_STAR ? star : r->lo;
	*lo_r = a < star ? a : star;
	*hi_r = a < star ? star : a;
}

int imap_seqset_resolve(const struct imap_seqset *set, uint32_t star, struct imap_seqset *out)
{
	memset(out, 0, sizeof(*out));
	if (set->last_result)
		return -1;
	for (size_t i = 0; i < set->count; i++) {
		const struct imap_seq_range *r = &set->ranges[i];
		if (!is_star_range(r)) {
			push(out, r->lo, r->hi);
			continue;
		}
		if (star == IMAP_SEQ_STAR) {
			imap_seqset_free(out);
			return -1;
		}
		uint32_t lo, hi;
		star_bounds(r, star, &lo, &hi);
		push(out, lo, hi);
	}
	imap_seqset_normalize(out);
	return 0;
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n, uint32_t star)
{
	if (set->last_result || n == 0)
		return false;
	size_t nconcrete = set->count;
	if (set->sorted) {
		while (nconcrete > 0 && is_star_range(&set->ranges[nconcrete - 1]))
			nconcrete--;
		/* Binary search the sorted, disjoint concrete ranges. */
		size_t lo = 0, hi = nconcrete;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			const struct imap_seq_range *r = &set->ranges[mid];
			if (n < r->lo)
				hi = mid;
			else if (n > r->hi)
				lo = mid + 1;
			else
				return true;
		}
	}
	for (size_t i = set->sorted ? nconcrete : 0; i < set->count; i++) {
		const struct imap_seq_range *r = &set->ranges[i];
		uint32_t a = r->lo, b = r->hi;
		if (is_star_range(r)) {
			if (star == IMAP_SEQ_STAR)
				continue;
			star_bounds(r, star, &a, &b);
		}
		if (n >= a && n <= b)
			return true;
	}
	return false;
}

uint64_t imap_seqset_count(const struct imap_seqset *set)
{
	uint64_t total = 0;
	for (size_t i = 0; i < set->count; i++)
		if (!is_star_range(&set->ranges[i]))
			total += (uint64_t)set->ranges[i].hi - set->ranges[i].lo + 1;
	return total;
}

uint32_t imap_seqset_last(const struct imap_seqset *set)
{
	uint32_t last = 0;
	for (size_t i = 0; i < set->count; i++)
		if (set->ranges[i].hi > last)
			last = set->ranges[i].hi;
	return last;
}

void imap_seqset_add(struct imap_seqset *set, uint32_t lo, uint32_t hi)
{
	if (lo > hi) {
		uint32_t t = lo;
		lo = hi;
		hi = t;
	}
	if (set->count == 0) {
		set->sorted = true;
	} else {
		struct imap_seq_range *last = &set->ranges[set->count - 1];
		if (!is_star_range(last) && lo >= last->lo && (uint64_t)lo <= (uint64_t)last->hi + 1) {
			if (hi > last->hi)
				last->hi = hi;
			return;
		}
		if (is_star_range(last) || lo <= last->hi)
			set->sorted = false;
	}
	push(set, lo, hi);
}

void imap_seqset_format(const struct imap_seqset *set, struct buf *out)
{
	if (set->last_result) {
		buf_append(out, "$", 1);
		return;
	}
	for (size_t i = 0; i < set->count; i++) {
		const struct imap_seq_range *r = &set->ranges[i];
		if (i > 0)
			buf_append(out, ",", 1);
		if (r->lo == IMAP_SEQ_STAR)
			buf_append(out, "*", 1);
		else if (is_star_range(r))
			buf_printf(out, "%u:*", r->lo);
		else if (r->lo == r->hi)
			buf_printf(out, "%u", r->lo);
		else
			buf_printf(out, "%u:%u", r->lo, r->hi);
	}
}

void imap_seqset_iter_init(struct imap_seqset_iter *it, const struct imap_seqset *set)
{
	it->set = set;
	it->idx = 0;
	it->next = set->count > 0 ? set->ranges[0].lo : 0;
}

bool imap_seqset_iter_next(struct imap_seqset_iter *it, uint32_t *n_r)
{
	while (it->idx < it->set->count) {
		const struct imap_seq_range *r = &it->set->ranges[it->idx];
		if (!is_star_range(r) && it->next <= r->hi) {
			*n_r = (uint32_t)it->next++;
			return true;
		}
		if (++it->idx < it->set->count)
			it->next = it->set->ranges[it->idx].lo;
	}
	return false;
}
