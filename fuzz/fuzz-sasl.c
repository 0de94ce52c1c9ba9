/* libFuzzer target for the SASL decoders: the input is a client's base64 response. */
#include "auth/sasl.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	char *user = NULL, *pass = NULL;
	if (sasl_plain_decode(in, size, &user, &pass) == 0) {
		/* On success both fields are non-empty strings without NULs. */
		if (user == NULL || pass == NULL || user[0] == '\0' || pass[0] == '\0')
			abort();
		free(user);
		free(pass);
	} else if (user != NULL || pass != NULL) {
		abort();
	}
	char *step = sasl_login_decode(in, size);
	if (step != NULL && step[0] == '\0')
		abort();
	free(step);
	(void)sasl_mech_parse(in, size);
	return 0;
}
