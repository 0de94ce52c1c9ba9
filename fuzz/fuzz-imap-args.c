/* What the IMAP session does with a parsed command's arguments: SEARCH criteria (IMAP4rev1 and
 * rev2), FETCH attributes, STORE/APPEND flags, STATUS items, APPEND date-times, and LIST
 * patterns matched against the other arguments. Input: one or more IMAP commands. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap/fetch/fetch.h"
#include "imap/parser.h"
#include "imap/search/search.h"
#include "imap/session/imap-private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void try_args(const struct imap_arg *args, size_t n)
{
	for (int rev1 = 0; rev1 < 2; rev1++) {
		struct imap_search_query *q = NULL;
		struct imap_search_error e;
		if (imap_search_parse(args, n, rev1, &q, &e) == 0)
			imap_search_query_free(&q);
		else if (e.reason == NULL)
			abort();
	}
	for (size_t i = 0; i < n; i++) {
		struct imap_fetch_plan *plan = NULL;
		size_t used = 0;
		const char *error = NULL;
		if (imap_fetch_plan_parse(args + i, n - i, IMAP_FETCH_PARSE_CONDSTORE, &plan, &used,
					  &error) == 0) {
			if (used == 0 || used > n - i)
				abort();
			struct buf b = {0};
			imap_fetch_plan_format(plan, &b);
			buf_free(&b);
			imap_fetch_plan_free(&plan);
		}
		uint32_t flags;
		const char *kw[8];
		size_t nkw;
		if (imap_parse_flags(args + i, n - i, &flags, kw, 8, &nkw, &error) == 0 &&
		    (nkw > 8 || (flags & ~(uint32_t)STORE_FLAGS_ALL)))
			abort();
		unsigned items;
		imap_status_parse(&args[i], &items, &error);
		if (args[i].type == IMAP_ARG_STRING || args[i].type == IMAP_ARG_ATOM)
			imap_parse_datetime((const char *)args[i].data);
		const char *pat = imap_arg_astring(&args[i]);
		for (size_t j = 0; pat != NULL && j < n; j++) {
			const char *name = imap_arg_astring(&args[j]);
			if (name != NULL && strlen(pat) < 300 && strlen(name) < 300 &&
			    imap_list_match(pat, name) != imap_list_match(pat, name))
				abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_parser *p = imap_parser_new(&imap_parser_limits_default);
	imap_parser_set_literal_mode(p, IMAP_LITERAL_PLUS);
	imap_parser_set_utf8(p, true);
	imap_parser_set_literal8(p, true);
	size_t pos = 0;
	for (int commands = 0; pos < size && commands < 16; commands++) {
		size_t used = 0;
		enum imap_parse_result r = imap_parser_feed(p, data + pos, size - pos, &used);
		pos += used;
		if (r == IMAP_PARSE_NEED_MORE)
			break;
		if (r == IMAP_PARSE_COMPLETE) {
			size_t n = 0;
			const struct imap_arg *args = imap_parser_args(p, &n);
			try_args(args, n);
		}
		if (r == IMAP_PARSE_COMPLETE || r == IMAP_PARSE_ERROR) {
			if (r == IMAP_PARSE_ERROR && imap_parser_error(p)->fatal)
				break;
			imap_parser_reset(p);
		}
	}
	imap_parser_free(&p);
	return 0;
}
