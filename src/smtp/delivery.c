#include "smtp/delivery.h"

#include "core/log.h"

enum store_err delivery_local(struct store *store, const char *account, struct store_blob *blob)
{
	struct store_account *acct = NULL;
	enum store_err err = store_account_open(store, account, &acct);
	uint32_t uid = 0;
	if (err == STORE_OK)
		err = store_deliver(acct, NULL, blob, 0, 0, &uid);
	store_account_close(&acct);
	if (err == STORE_OK)
		log_info("event=delivered user=\"%s\" uid=%u size=%llu", account, uid,
			 (unsigned long long)store_blob_size(blob));
	else
		log_warn("event=delivery_failed user=\"%s\" error=\"%s\"", account, store_strerror(err));
	return err;
}

enum store_err delivery_write_crlf(struct store_blob *blob, const unsigned char *data, size_t len,
				   struct crlf_state *st)
{
	static const unsigned char crlf[2] = {'\r', '\n'};
	size_t start = 0;
	enum store_err err = STORE_OK;
	for (size_t i = 0; i < len && err == STORE_OK; i++) {
		unsigned char c = data[i];
		if (st->pending_cr) {
			/* The CR before this byte was held back: CRLF or a bare CR, both become CRLF. */
			st->pending_cr = false;
			err = store_blob_write(blob, crlf, 2);
			start = i + (c == '\n');
			if (c == '\n')
				continue;
		}
		if (c == '\r') {
			err = store_blob_write(blob, data + start, i - start);
			st->pending_cr = true;
			start = i + 1;
		} else if (c == '\n') {
			if (err == STORE_OK)
				err = store_blob_write(blob, data + start, i - start);
			if (err == STORE_OK)
				err = store_blob_write(blob, crlf, 2);
			start = i + 1;
		}
	}
	if (err == STORE_OK && start < len)
		err = store_blob_write(blob, data + start, len - start);
	return err;
}

enum store_err delivery_finish_crlf(struct store_blob *blob, struct crlf_state *st)
{
	if (!st->pending_cr)
		return STORE_OK;
	st->pending_cr = false;
	return store_blob_write(blob, "\r\n", 2);
}
