/* RFC 5256 §2.1: the base subject used by SORT SUBJECT and THREAD. Input is the decoded
 * (UTF-8) Subject. Case is kept; the comparison collation is the caller's business. */
#include "mime/mime-private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* subj-blob = "[" *BLOBCHAR "]" *WSP; returns its length at s, 0 if none. */
static size_t blob_len(const char *s)
{
	if (*s != '[')
		return 0;
	size_t i = 1;
	while (s[i] != '\0' && s[i] != '[' && s[i] != ']')
		i++;
	if (s[i] != ']')
		return 0;
	i++;
	while (is_wsp(s[i]))
		i++;
	return i;
}

/* subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":" */
static size_t refwd_len(const char *s)
{
	size_t i;
	if (strncasecmp(s, "re", 2) == 0)
		i = 2;
	else if (strncasecmp(s, "fwd", 3) == 0)
		i = 3;
	else if (strncasecmp(s, "fw", 2) == 0)
		i = 2;
	else
		return 0;
	while (is_wsp(s[i]))
		i++;
	i += blob_len(s + i);
	if (s[i] != ':')
		return 0;
	return i + 1;
}

/* subj-leader = (*subj-blob subj-refwd) / WSP */
static size_t leader_len(const char *s)
{
	if (is_wsp(*s))
		return 1;
	size_t i = 0, b;
	while ((b = blob_len(s + i)) > 0)
		i += b;
	size_t r = refwd_len(s + i);
	return r > 0 ? i + r : 0;
}

char *mime_base_subject(const char *subject, bool *is_reply_r)
{
	/* (1) whitespace runs (tabs, folding) become one space */
	size_t len = strlen(subject);
	char *s = xmalloc(len + 1);
	size_t n = 0;
	bool ws = false;
	for (size_t i = 0; i < len; i++) {
		char c = subject[i];
		if (c == '\t' || c == '\r' || c == '\n' || c == ' ') {
			if (!ws)
				s[n++] = ' ';
			ws = true;
			continue;
		}
		ws = false;
		s[n++] = c;
	}
	s[n] = '\0';
	bool reply = false;
	char *start = s;

	for (;;) {
		/* (2) trailing "(fwd)" and whitespace */
		size_t l = strlen(start);
		for (;;) {
			if (l > 0 && is_wsp(start[l - 1])) {
				l--;
			} else if (l >= 5 && strncasecmp(start + l - 5, "(fwd)", 5) == 0) {
				l -= 5;
				reply = true;
			} else {
				break;
			}
		}
		start[l] = '\0';
		/* (3)-(5) leaders and blobs */
		bool changed = true;
		while (changed) {
			changed = false;
			size_t k;
			while ((k = leader_len(start)) > 0) {
				if (!is_wsp(*start))
					reply = true;
				start += k;
				changed = true;
			}
			k = blob_len(start);
			if (k > 0 && start[k] != '\0') {
				start += k;
				changed = true;
			}
		}
		/* (6) "[fwd:" ... "]" */
		l = strlen(start);
		if (l >= 6 && strncasecmp(start, "[fwd:", 5) == 0 && start[l - 1] == ']') {
			start[l - 1] = '\0';
			start += 5;
			reply = true;
			continue;
		}
		break;
	}
	char *res = xstrdup(start);
	free(s);
	if (is_reply_r != NULL)
		*is_reply_r = reply;
	return res;
}
