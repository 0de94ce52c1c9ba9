/* POP3 TRANSACTION state: STAT, LIST, UIDL, DELE, RSET, NOOP. */
#include "pop3/pop3-private.h"

#include "core/util.h"

#include <string.h>

struct pop3_msg *pop3_arg_single(struct pop3 *p, const char *args, uint32_t *msgno_r)
{
	uint64_t n;
	if (parse_u64(args, strlen(args), UINT32_MAX, &n) < 0) {
		pop3_bad_command(p, "Invalid message number");
		return NULL;
	}
	if (n == 0 || n > p->nmsgs) {
		pop3_reply_err(p, "No such message");
		return NULL;
	}
	struct pop3_msg *m = &p->msgs[n - 1];
	if (m->deleted) {
		pop3_reply_err(p, "Message %llu is already deleted", (unsigned long long)n);
		return NULL;
	}
	*msgno_r = (uint32_t)n;
	return m;
}

void pop3_cmd_stat(struct pop3 *p, char *args)
{
	(void)args;
	size_t count = 0;
	uint64_t octets = 0;
	for (size_t i = 0; i < p->nmsgs; i++) {
		if (!p->msgs[i].deleted) {
			count++;
			octets += p->msgs[i].size;
		}
	}
	pop3_reply_ok(p, "%zu %llu", count, (unsigned long long)octets);
}

/* LIST and UIDL share their shape: one message, or a multi-line listing. */
static void listing(struct pop3 *p, char *args, bool uidl)
{
	uint32_t msgno;
	if (args[0] != '\0') {
		struct pop3_msg *m = pop3_arg_single(p, args, &msgno);
		if (m == NULL)
			return;
		if (uidl)
			pop3_reply_ok(p, "%u %08x%08x", msgno, p->uidvalidity, m->uid);
		else
			pop3_reply_ok(p, "%u %llu", msgno, (unsigned long long)m->size);
		return;
	}
	struct buf b = {0};
	buf_append_str(&b, "+OK Listing follows\r\n");
	for (size_t i = 0; i < p->nmsgs; i++) {
		if (p->msgs[i].deleted)
			continue;
		/* UIDL: hex digits only (CLIENTS.md: dots upset old Outlook), stable and never
		 * reused because UIDs are never reused within a UIDVALIDITY. */
		if (uidl)
			buf_printf(&b, "%zu %08x%08x\r\n", i + 1, p->uidvalidity, p->msgs[i].uid);
		else
			buf_printf(&b, "%zu %llu\r\n", i + 1, (unsigned long long)p->msgs[i].size);
	}
	buf_append_str(&b, ".\r\n");
	conn_write(p->c, b.data, b.len);
	buf_free(&b);
}

void pop3_cmd_list(struct pop3 *p, char *args)
{
	listing(p, args, false);
}

void pop3_cmd_uidl(struct pop3 *p, char *args)
{
	listing(p, args, true);
}

void pop3_cmd_dele(struct pop3 *p, char *args)
{
	uint32_t msgno;
	struct pop3_msg *m = pop3_arg_single(p, args, &msgno);
	if (m == NULL)
		return;
	m->deleted = true;
	pop3_reply_ok(p, "Message %u marked for deletion", msgno);
}

void pop3_cmd_rset(struct pop3 *p, char *args)
{
	(void)args;
	for (size_t i = 0; i < p->nmsgs; i++)
		p->msgs[i].deleted = false;
	pop3_reply_ok(p, "%zu messages", p->nmsgs);
}

void pop3_cmd_noop(struct pop3 *p, char *args)
{
	(void)args;
	pop3_reply_ok(p, "NOOP");
}
