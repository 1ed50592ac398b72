#include <string.h>

#include "common/version.h"

#ifndef SY_VERSION
#error "SY_VERSION must come from the Makefile (VERSION)"
#endif

const char *sy_version(void)
{
	return SY_VERSION;
}

int sy_version_asked(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return 0;
		if (strcmp(argv[i], "--version") == 0)
			return 1;
	}
	return 0;
}
