/* Outbound queue files and DSN xtext: whatever parses must survive a save and a load
 * unchanged (a queue file written after a delivery attempt is read by the next one). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/util.h"
#include "smtp/queue.h"
#include "smtp/smtp-private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *data_dir;

static void same(const struct queue_msg *a, const struct queue_msg *b)
{
	bool ok = strcmp(a->from, b->from) == 0 && a->nrcpts == b->nrcpts &&
		  a->ret_hdrs == b->ret_hdrs && a->smtputf8 == b->smtputf8 &&
		  a->created == b->created && a->next_attempt == b->next_attempt &&
		  a->attempts == b->attempts && a->warned == b->warned &&
		  (a->envid == NULL) == (b->envid == NULL) &&
		  (a->envid == NULL || strcmp(a->envid, b->envid) == 0);
	for (size_t i = 0; ok && i < a->nrcpts; i++) {
		const struct queue_rcpt *x = &a->rcpts[i], *y = &b->rcpts[i];
		ok = strcmp(x->address, y->address) == 0 && x->notify == y->notify &&
		     x->state == y->state && x->reported == y->reported &&
		     strcmp(x->status, y->status) == 0 && (x->orcpt == NULL) == (y->orcpt == NULL) &&
		     (x->orcpt == NULL || strcmp(x->orcpt, y->orcpt) == 0);
	}
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (data_dir == NULL) {
		char tmpl[] = "/tmp/sarn-fuzz-queue-XXXXXX";
		if (mkdtemp(tmpl) == NULL)
			abort();
		data_dir = xstrdup(tmpl);
		if (queue_init(data_dir) < 0)
			abort();
	}
	char *xt = xstrndup((const char *)data, size);
	if (smtp_xtext_decode(xt) == 0)
		for (const char *p = xt; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				abort(); /* decoded values go into tab-separated files */
	free(xt);

	struct queue_msg m;
	if (queue_parse(data, size, &m) < 0)
		return 0;
	/* Values that hold the separators cannot come from sarn itself; skip them. */
	bool writable = strpbrk(m.from, "\t\n") == NULL && (m.envid == NULL || strpbrk(m.envid, "\t\n") == NULL);
	for (size_t i = 0; writable && i < m.nrcpts; i++)
		writable = m.rcpts[i].address[0] != '\0';
	if (writable) {
		memcpy(m.id, "0123456789abcdef", QUEUE_ID_LEN + 1);
		struct queue_msg back;
		if (queue_save(data_dir, &m) < 0 || queue_load(data_dir, m.id, &back) < 0)
			abort();
		same(&m, &back);
		queue_msg_free(&back);
	}
	queue_msg_free(&m);
	return 0;
}
