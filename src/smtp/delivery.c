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
