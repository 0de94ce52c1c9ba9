/* The configuration file parser: any text either loads or gives an error naming a line;
 * loaded values stay within their documented bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	struct config cfg;
	config_defaults(&cfg);
	char *err = NULL;
	if (config_load_string(&cfg, text, "fuzz", &err) < 0) {
		if (err == NULL || strncmp(err, "fuzz: ", 6) != 0)
			abort();
		free(err);
	} else if (cfg.max_line_length < 1024 || cfg.max_message_size < 1024 ||
		   cfg.data_dir == NULL || cfg.hostname == NULL || cfg.workers > 256) {
		abort();
	}
	config_free(&cfg);
	free(text);
	return 0;
}
