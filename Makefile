# Switchyard: one non-recursive GNU Makefile.
#
#   make            build the binaries into $(BUILD)/
#   make test       unit + integration tests (the README's test command)
#   make check      the same tests, built with ASan + UBSan into build-san/
#   make lint       clang-format check of every C file
#   make fuzz       libFuzzer targets (clang, ASan + UBSan) into build-fuzz/, each
#                   run FUZZ_SECONDS (default 60); FUZZ_TARGETS picks a subset;
#                   make fuzz-build only builds them
#   make bench      benchmarks (bench/run.sh), figures go to stdout
#   make demo       the whole mission in a private network namespace
#   make install    PREFIX=/usr/local SYSCONFDIR=/etc DESTDIR= SY_USER=switchyard
#
# Quiet by default; V=1 shows full commands. WERROR=1 (CI) adds -Werror.
# Sources are found by wildcard per module, so adding a file needs no edit here.

BUILD   ?= build
# The version every program reports (--version, switchyard_build_info). It is
# defined here only; common/version.c gets it, and rebuilds when it changes.
VERSION ?= 0.1.0
PREFIX  ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR ?=
# The user and group the instances run as in the installed configuration
# (proxy.user, proxy.group); make install creates them only when it installs
# as root into the real system (no DESTDIR).
SY_USER ?= switchyard
CC      ?= cc
PKG_CONFIG ?= pkg-config

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-6s %s\n' $(1) $(2)
endif

# -Wformat-truncation is off: it fires on every bounded snprintf path join,
# and the code checks snprintf's return value where truncation matters.
WARN := -Wall -Wextra -Wformat=2 -Wshadow -Wmissing-prototypes -Wvla \
	-Wstrict-prototypes -Wpointer-arith -Wno-missing-field-initializers \
	-Wno-format-truncation
ifeq ($(WERROR),1)
WARN += -Werror
endif

NL_CFLAGS := $(shell $(PKG_CONFIG) --cflags libnl-3.0 libnl-nf-3.0 2>/dev/null || echo -I/usr/include/libnl3)
NL_LIBS   := $(shell $(PKG_CONFIG) --libs libnl-3.0 libnl-nf-3.0 2>/dev/null || echo -lnl-nf-3 -lnl-3)
NFT_CFLAGS := $(shell $(PKG_CONFIG) --cflags libnftnl libmnl 2>/dev/null)
NFT_LIBS   := $(shell $(PKG_CONFIG) --libs libnftnl libmnl 2>/dev/null || echo -lnftnl -lmnl)
JANSSON_CFLAGS := $(shell $(PKG_CONFIG) --cflags jansson 2>/dev/null)
JANSSON_LIBS   := $(shell $(PKG_CONFIG) --libs jansson 2>/dev/null || echo -ljansson)

OPT      ?= -O2 -g
CPPFLAGS += -I. -D_GNU_SOURCE $(NL_CFLAGS) $(NFT_CFLAGS) $(JANSSON_CFLAGS)
CFLAGS   += -std=c11 $(OPT) $(WARN) -pthread -fno-strict-aliasing
LDFLAGS  += -pthread
LDLIBS   += -lssl -lcrypto -lyaml -lip4tc -lip6tc $(NFT_LIBS) $(NL_LIBS) $(JANSSON_LIBS)

ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
# FUZZ=1 is set by `make fuzz` for its own build (clang only): the library is
# instrumented for coverage without libFuzzer's main, which only the fuzz
# targets link. clang does not know gcc's -Wno-format-truncation.
ifeq ($(FUZZ),1)
CFLAGS  += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined -Wno-unknown-warning-option
LDFLAGS += -fsanitize=fuzzer,address,undefined
endif

# Programs: each has one file holding main(); everything else in the module
# folders goes into one static library that all programs link against.
MAINS := proxy/main.c supervisor/switchyardd.c supervisor/switchyard.c
LIB_SRC := $(filter-out $(MAINS),$(wildcard common/*.c certstore/*.c proxy/*.c netfilter/*.c supervisor/*.c certsync/*.c))
LIB := $(BUILD)/libswitchyard.a

BINS := $(BUILD)/switchyard-proxy $(BUILD)/switchyardd $(BUILD)/switchyard
# Helper programs for tests and benchmarks: every .c under these folders is one program.
TOOL_SRC := $(wildcard tests/tools/*.c bench/*.c)
TOOLS := $(patsubst %.c,$(BUILD)/%,$(TOOL_SRC))
# Unit tests mirror the source tree: tests/unit/<module>/test_*.c, linked with cmocka.
UNIT_SRC := $(wildcard tests/unit/*/test_*.c)
UNITS := $(patsubst %.c,$(BUILD)/%,$(UNIT_SRC))

# libFuzzer targets: every tests/fuzz/fuzz_*.c is one target (docs/fuzzing.md),
# with its seeds in tests/fuzz/corpus/<target>/ and an optional dictionary
# tests/fuzz/<target>.dict. They are built only by `make fuzz`.
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst %.c,$(BUILD)/%,$(FUZZ_SRC))
FUZZ_BUILD ?= build-fuzz
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(patsubst tests/fuzz/%.c,%,$(FUZZ_SRC))

ALL_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC) $(MAINS) $(TOOL_SRC) $(UNIT_SRC) $(FUZZ_SRC))

.PHONY: FORCE all deps test check lint format bench demo install clean fuzz fuzz-build fuzz-bins nspawn-test
all: $(BINS) $(TOOLS) $(UNITS)

deps:
	$(Q)sh scripts/install-deps.sh

$(BUILD)/%.o: %.c
	$(call msg,CC,$<)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

# The version reaches one object only; the stamp file changes (and so
# rebuilds that object) only when VERSION does.
$(BUILD)/.version: FORCE
	$(Q)mkdir -p $(@D)
	$(Q)echo '$(VERSION)' | cmp -s - $@ || echo '$(VERSION)' >$@
$(BUILD)/common/version.o: $(BUILD)/.version
$(BUILD)/common/version.o: CPPFLAGS += -DSY_VERSION='"$(VERSION)"'
FORCE:

$(LIB): $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC))
	$(call msg,AR,$@)
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^

$(BUILD)/switchyard-proxy: $(BUILD)/proxy/main.o $(LIB)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/switchyardd: $(BUILD)/supervisor/switchyardd.o $(LIB)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/switchyard: $(BUILD)/supervisor/switchyard.o $(LIB)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(TOOLS): $(BUILD)/%: $(BUILD)/%.o $(LIB)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(UNITS): $(BUILD)/%: $(BUILD)/%.o $(LIB)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ -lcmocka $(LDLIBS)

$(FUZZ_BINS): $(BUILD)/%: $(BUILD)/%.o $(LIB)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The test command named in the README. tests/run.sh runs every unit test and
# every numbered integration test, and ends with "N passed, N failed, N skipped".
test: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tests/run.sh $(BUILD)

check: deps
	$(Q)$(MAKE) --no-print-directory all BUILD=build-san SAN=1 OPT='-O1 -g'
	$(Q)ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		tests/run.sh build-san

fuzz-bins: $(FUZZ_BINS)

# Builds the fuzz targets only; `make fuzz` also runs them, and fails on any
# crash, timeout, leak or sanitizer report (tests/fuzz/run.sh).
fuzz-build: deps
	$(Q)$(MAKE) --no-print-directory fuzz-bins BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) FUZZ=1 \
		OPT='-O1 -g'

fuzz: fuzz-build
	$(Q)tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

C_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*')
lint:
	$(Q)clang-format --dry-run --Werror $(C_FILES)
	@echo "lint: ok"

format:
	$(Q)clang-format -i $(C_FILES)

bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)bench/run.sh $(BUILD)

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo.sh $(BUILD)

# The installed files name each other by path: written for /usr/local and
# /etc, rewritten here for PREFIX and SYSCONFDIR.
INSTALL_SED = sed -e 's|/usr/local/|$(PREFIX)/|g' -e 's|/etc/switchyard/|$(SYSCONFDIR)/switchyard/|g'

install: $(BINS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/sbin
	install -m 0755 $(BUILD)/switchyard $(DESTDIR)$(PREFIX)/bin/switchyard
	install -m 0755 $(BUILD)/switchyardd $(DESTDIR)$(PREFIX)/sbin/switchyardd
	install -m 0755 $(BUILD)/switchyard-proxy $(DESTDIR)$(PREFIX)/sbin/switchyard-proxy
	install -d $(DESTDIR)$(PREFIX)/share/doc/switchyard $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 0644 README.md BENCHMARKS.md docs/*.md etc/switchyard.yaml \
		$(DESTDIR)$(PREFIX)/share/doc/switchyard/
	for f in switchyard.service switchyard-certsync.service switchyard-certsync.timer; do \
		$(INSTALL_SED) scripts/$$f >$(DESTDIR)$(PREFIX)/lib/systemd/system/$$f && \
		chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/system/$$f || exit 1; \
	done
	install -d $(DESTDIR)$(PREFIX)/lib/tmpfiles.d
	install -m 0644 scripts/switchyard.tmpfiles $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/switchyard.conf
	# Debian's cron ignores /etc/cron.d files with a dot in the name.
	install -d $(DESTDIR)$(SYSCONFDIR)/cron.d
	$(INSTALL_SED) scripts/switchyard-certsync.crond >$(DESTDIR)$(SYSCONFDIR)/cron.d/switchyard-certsync
	chmod 0644 $(DESTDIR)$(SYSCONFDIR)/cron.d/switchyard-certsync
	# The configuration: the example with the instances running as
	# SY_USER, never over an operator's file. Every directory it names
	# exists afterwards (/run/switchyard: the unit's RuntimeDirectory= or
	# the tmpfiles.d entry), so check-config passes as installed.
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/switchyard
	install -d -m 0750 $(DESTDIR)$(SYSCONFDIR)/switchyard/certs $(DESTDIR)/var/lib/switchyard
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/switchyard/switchyard.yaml ]; then \
		echo "kept the existing $(DESTDIR)$(SYSCONFDIR)/switchyard/switchyard.yaml"; \
	else \
		$(INSTALL_SED) -e 's|^  user: "".*|  user: $(SY_USER)        # made by make install; the default "" = stay|' \
			-e 's|^  group: "".*|  group: $(SY_USER)|' \
			etc/switchyard.yaml >$(DESTDIR)$(SYSCONFDIR)/switchyard/switchyard.yaml && \
		chmod 0644 $(DESTDIR)$(SYSCONFDIR)/switchyard/switchyard.yaml; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
		sh scripts/adduser.sh $(SY_USER) && \
		chgrp $(SY_USER) $(SYSCONFDIR)/switchyard/certs /var/lib/switchyard && \
		install -d -m 0755 /run/switchyard; \
	else \
		echo "not creating the user $(SY_USER) (DESTDIR set or not root): README.md, \"Installing\""; \
	fi

# Opt-in, not part of `make test`: the installed units under a real systemd
# as PID 1 in a systemd-nspawn container (tests/manual/nspawn.sh says what
# it checks; needs root, systemd-container and debootstrap).
nspawn-test: all
	$(Q)tests/manual/nspawn.sh $(BUILD)

clean:
	rm -rf build build-san build-fuzz

-include $(ALL_OBJ:.o=.d)
