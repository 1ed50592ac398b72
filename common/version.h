/*
 * version: the one version string of every Switchyard program. Its value
 * comes from the Makefile's VERSION (make VERSION=... overrides it), which
 * is passed to common/version.c alone, so a new version rebuilds one file.
 */
#ifndef SY_VERSION_H
#define SY_VERSION_H

/* The version, e.g. "0.1.0"; a static string. */
const char *sy_version(void);

/* Returns 1 when argv[1..argc-1] holds "--version" before any "--"; the
 * programs then print "PROGRAM VERSION" and exit 0 before anything else. */
int sy_version_asked(int argc, char **argv);

#endif
