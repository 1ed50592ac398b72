/*
 * switchyardd: the supervisor daemon. Work in progress: see issue 5.
 */
#include <stdio.h>

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "switchyardd: not implemented yet\n");
	return 1;
}
