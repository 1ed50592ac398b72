/*
 * switchyard-proxy: one TLS-terminating instance (blue or green).
 * Work in progress: see issue 3.
 */
#include <stdio.h>

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "switchyard-proxy: not implemented yet\n");
	return 1;
}
