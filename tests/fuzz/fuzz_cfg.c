/*
 * fuzz_cfg: the YAML configuration loader (cfg_load_buf), the same code path
 * as cfg_load after it has read the file. Every input must either load or be
 * rejected with at least one message; a loaded configuration is checked for
 * the invariants the rest of Switchyard relies on.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *errs = NULL;
	int nerrs = -1;
	struct cfg *cfg = cfg_load_buf("fuzz.yaml", (const char *)data, size, &errs, &nerrs);

	if (cfg == NULL) {
		/* A rejected file always says why. */
		if (nerrs <= 0 || errs == NULL || errs[0] == '\0')
			abort();
	} else {
		if (nerrs != 0 || errs != NULL)
			abort();
		if (cfg->nlisteners < 1 || cfg->nlisteners > CFG_MAX_LISTENERS)
			abort();
		if (cfg->backend.nservers < 1 || cfg->backend.nservers > CFG_MAX_SERVERS)
			abort();
		if (cfg->tls.nalpn < 0 || cfg->tls.nalpn > CFG_MAX_ALPN)
			abort();
		if (cfg->proxy.ncpu_map < 0 || cfg->proxy.ncpu_map > CFG_MAX_CPUS)
			abort();
		for (int c = 0; c < CFG_NCOLOURS; c++) {
			const struct cfg_instance *in = &cfg->instances[c];

			if (in->nbind < 1 || in->nbind > CFG_MAX_BIND)
				abort();
			/* Strings are fixed arrays: each must be terminated. */
			if (memchr(in->control_socket, '\0', sizeof(in->control_socket)) == NULL)
				abort();
		}
	}
	free(errs);
	cfg_free(cfg);
	return 0;
}
