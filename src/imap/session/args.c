/* Command arguments shared by several commands: mailbox names, flags, dates. */
#include "imap/session/imap-private.h"

#include "core/util.h"
#include "imap/flags.h"
#include "imap/quote.h"
#include "imap/utf7.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

char *imap_arg_mailbox(struct imap *s, const char *tag, const struct imap_arg *arg)
{
	const char *name = imap_arg_astring(arg);
	if (name == NULL) {
		imap_bad(s, tag, "Mailbox name expected");
		return NULL;
	}
	char *canon = NULL;
	const char *error = NULL;
	if (imap_mailbox_from_client(name, strlen(name), s->rev2, &canon, &error) < 0) {
		imap_no(s, tag, "[CANNOT] Invalid mailbox name: %s", error);
		return NULL;
	}
	return canon;
}

void imap_write_mailbox(struct imap *s, struct buf *out, const char *name)
{
	if (s->rev2) {
		imap_write_astring(out, name, strlen(name), IMAP_QUOTE_UTF8);
		return;
	}
	char *utf7 = NULL;
	const char *error = NULL;
	if (imap_utf8_to_utf7(name, strlen(name), &utf7, &error) < 0) {
		/* The store only holds valid UTF-8; never reached. */
		imap_write_astring(out, name, strlen(name), 0);
		return;
	}
	imap_write_astring(out, utf7, strlen(utf7), 0);
	free(utf7);
}

int imap_parse_flags(const struct imap_arg *arg, size_t nargs, uint32_t *flags_r,
		     const char **kw, size_t max, size_t *nkw_r, const char **error_r)
{
	if (nargs == 1 && arg[0].type == IMAP_ARG_LIST) {
		nargs = arg[0].list_count;
		arg = arg[0].list;
	} else if (nargs == 0) {
		*error_r = "Flags expected";
		return -1;
	}
	uint32_t flags = 0;
	size_t nkw = 0;
	for (size_t i = 0; i < nargs; i++) {
		const char *f = imap_arg_atom(&arg[i]);
		if (f == NULL) {
			*error_r = "Flags are atoms";
			return -1;
		}
		if (f[0] != '\\') {
			if (nkw == max) {
				*error_r = "Too many keywords";
				return -1;
			}
			kw[nkw++] = f;
			continue;
		}
		uint32_t flag = imap_system_flag(f);
		if (flag == 0) {
			*error_r = strcasecmp(f, "\\Recent") == 0 ? "\\Recent cannot be set"
								   : "Unknown system flag";
			return -1;
		}
		flags |= flag;
	}
	*flags_r = flags;
	*nkw_r = nkw;
	return 0;
}

static int two_digits(const char *p)
{
	if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9')
		return -1;
	return (p[0] - '0') * 10 + (p[1] - '0');
}

int64_t imap_parse_datetime(const char *s)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	/* "dd-Mon-yyyy hh:mm:ss +zzzz"; the day may be " d". */
	if (strlen(s) != 26 || s[2] != '-' || s[6] != '-' || s[11] != ' ' || s[14] != ':' ||
	    s[17] != ':' || s[20] != ' ' || (s[21] != '+' && s[21] != '-'))
		return -1;
	char d0 = s[0] == ' ' ? '0' : s[0];
	char day_s[2] = {d0, s[1]};
	int day = two_digits(day_s);
	int mon = -1;
	for (int i = 0; i < 12; i++)
		if (strncasecmp(s + 3, months + 3 * i, 3) == 0)
			mon = i;
	int yh = two_digits(s + 7), yl = two_digits(s + 9);
	int hh = two_digits(s + 12), mm = two_digits(s + 15), ss = two_digits(s + 18);
	int zh = two_digits(s + 22), zm = two_digits(s + 24);
	if (day < 1 || day > 31 || mon < 0 || yh < 0 || yl < 0 || hh < 0 || hh > 23 || mm < 0 ||
	    mm > 59 || ss < 0 || ss > 60 || zh < 0 || zm < 0 || zm > 59)
		return -1;
	struct tm tm = {0};
	tm.tm_year = yh * 100 + yl - 1900;
	tm.tm_mon = mon;
	tm.tm_mday = day;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	int64_t t = (int64_t)timegm(&tm);
	int64_t zone = (int64_t)(zh * 60 + zm) * 60;
	return s[21] == '+' ? t - zone : t + zone;
}

/* Wildcard match (RFC 9051 §6.3.9): "*" matches anything, "%" anything but the delimiter.
 * Row by row over the name, so a pattern full of wildcards costs no more than its length
 * times the name's. */
bool imap_list_match(const char *pat, const char *name)
{
	size_t n = strlen(name);
	bool *row = xcalloc(n + 1, sizeof *row), *next = xcalloc(n + 1, sizeof *next);
	row[0] = true;
	for (const char *p = pat; *p; p++) {
		for (size_t j = 0; j <= n; j++) {
			if (*p == '*')
				next[j] = row[j] || (j > 0 && next[j - 1]);
			else if (*p == '%')
				next[j] = row[j] || (j > 0 && next[j - 1] && name[j - 1] != '/');
			else
				next[j] = j > 0 && row[j - 1] && name[j - 1] == *p;
		}
		bool *t = row;
		row = next;
		next = t;
	}
	bool match = row[n];
	free(row);
	free(next);
	return match;
}
