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
				   bool *prev_cr)
{
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		bool cr_before = i > 0 ? data[i - 1] == '\r' : *prev_cr;
		if (data[i] != '\n' || cr_before)
			continue;
		enum store_err err = store_blob_write(blob, data + start, i - start);
		if (err == STORE_OK)
			err = store_blob_write(blob, "\r", 1);
		if (err != STORE_OK)
			return err;
		start = i;
	}
	if (len > 0)
		*prev_cr = data[len - 1] == '\r';
	return store_blob_write(blob, data + start, len - start);
}
