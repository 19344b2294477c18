# pixcrypt — build, test, install, benchmark.
#
#   make                 build ./pixcrypt
#   make demo            build, create a demo volume with sample images and mount it
#   make check           build and run every test (unit + real FUSE mounts), TAP via prove
#   make check SANITIZE=1  the same under ASan + UBSan
#   make fuzz            each libFuzzer target for FUZZ_SECONDS (default 60), see below
#   make crash           the crash test (t1500) for CRASH_ROUNDS rounds (default 100)
#   make bench           pixcrypt vs gocryptfs on the same workloads, printed as ratios
#   make install PREFIX=/usr/local

PREFIX   ?= /usr/local
CC       ?= cc
PKGS      = fuse3 libsodium sqlite3 libpng libjpeg zlib libqrencode
# Lazy (=) so that `make check` can install missing packages before these are evaluated.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))

CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -ffp-contract=off -D_FILE_OFFSET_BITS=64 -D_GNU_SOURCE -MMD -MP
CPPFLAGS += -I. $(PKG_CFLAGS)
LDLIBS   += $(PKG_LIBS) -lpthread -lm

ifeq ($(SANITIZE),1)
BUILD    ?= build/san
CFLAGS   += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
else
BUILD    ?= build/rel
endif

# Module sources.  fs/main.c is the program entry; everything else also links into tests.
LIB_SRCS  = $(wildcard codec/*.c keystore/*.c nn/*.c) $(filter-out fs/main.c,$(wildcard fs/*.c))
LIB_OBJS  = $(LIB_SRCS:%.c=$(BUILD)/%.o)
MAIN_OBJ  = $(BUILD)/fs/main.o
UNIT_SRCS = $(wildcard tests/unit/test_*.c)
UNIT_BINS = $(UNIT_SRCS:%.c=$(BUILD)/%)
TOOL_SRCS = $(wildcard tests/tools/*.c)
TOOL_BINS = $(TOOL_SRCS:%.c=$(BUILD)/%)

# The shared image corpus the tests read (never copied into the project), beside the
# checkout unless PXC_CORPUS names it; tests that need it skip when it is absent.
PXC_CORPUS ?= $(wildcard $(abspath $(CURDIR)/../shared/corpus))
TEST_ENV   = PXC_BUILD=$(CURDIR)/$(BUILD) PXC_BIN=$(CURDIR)/$(BUILD)/pixcrypt \
             $(if $(PXC_CORPUS),PXC_CORPUS=$(PXC_CORPUS))

.PHONY: all deps check check-unit demo demo-stop bench soak install install-contrib uninstall clean format

all: pixcrypt

pixcrypt: $(BUILD)/pixcrypt
	cp $< $@

$(BUILD)/pixcrypt: $(MAIN_OBJ) $(LIB_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The network's loops over independent outputs are written to run in vectors; -O3 lets the
# compiler do so (-ffp-contract=off still keeps every result bit-identical).
$(BUILD)/nn/%.o: CFLAGS += -O3
# The same holds for the metrics' window filters (SSIM), the bulk of `pixcrypt analyze`.
$(BUILD)/codec/metrics.o: CFLAGS += -O3

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/unit/%: tests/unit/%.c tests/unit/tap.h $(LIB_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

$(BUILD)/tests/tools/%: tests/tools/%.c $(LIB_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

# Installs missing Debian packages when run as root, otherwise prints the apt-get line.
deps:
	@sh contrib/deps.sh build

check: deps
	@sh contrib/deps.sh test
	$(MAKE) pixcrypt $(UNIT_BINS) $(TOOL_BINS) fuzz-build
	$(TEST_ENV) prove --timer $(PROVE_FLAGS) $(UNIT_BINS) tests/t/*.t

check-unit: $(UNIT_BINS)
	$(TEST_ENV) prove $(PROVE_FLAGS) $(UNIT_BINS)

demo: deps
	$(MAKE) pixcrypt
	sh contrib/demo.sh start

demo-stop:
	sh contrib/demo.sh stop

# The concurrency test for SOAK_SECONDS (default 600) instead of half a minute.
SOAK_SECONDS ?= 600
soak: deps
	@sh contrib/deps.sh test
	$(MAKE) pixcrypt
	PXC_CHURN_SECONDS=$(SOAK_SECONDS) PXC_TIMEOUT=$$(($(SOAK_SECONDS) + 600)) $(TEST_ENV) \
		prove -v tests/t/t1300-concurrency.t

# The crash test (t1500) for CRASH_ROUNDS rounds instead of eight.
CRASH_ROUNDS ?= 100
.PHONY: crash
crash: deps
	@sh contrib/deps.sh test
	$(MAKE) pixcrypt
	PXC_CRASH_ROUNDS=$(CRASH_ROUNDS) $(TEST_ENV) prove -v tests/t/t1500-crash.t

bench: deps
	@sh contrib/deps.sh bench
	$(MAKE) pixcrypt $(BUILD)/tests/tools/pngdecode $(BUILD)/tests/tools/codec_time
	sh contrib/bench.sh $(CURDIR)/pixcrypt
	PXC_CORPUS=$(PXC_CORPUS) sh contrib/bench-images.sh $(CURDIR)/pixcrypt $(BUILD)/tests/tools/pngdecode \
		$(BUILD)/tests/tools/codec_time

install: pixcrypt install-contrib
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 pixcrypt $(DESTDIR)$(PREFIX)/bin/pixcrypt
	if ls man/*.1 >/dev/null 2>&1; then install -d $(DESTDIR)$(PREFIX)/share/man/man1 && \
	  install -m 0644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/; fi
	if ls man/*.5 >/dev/null 2>&1; then install -d $(DESTDIR)$(PREFIX)/share/man/man5 && \
	  install -m 0644 man/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/; fi

# contrib/: bash completion, the systemd user unit and the fstab mount helper, each
# pointed at the installed binary.  mount(8) looks for mount.TYPE helpers in /sbin
# only, whatever PREFIX is.
SBINDIR         ?= /sbin
COMPLETIONSDIR  ?= $(PREFIX)/share/bash-completion/completions
SYSTEMDUSERDIR  ?= $(PREFIX)/lib/systemd/user
CONTRIB_INSTALLED = $(COMPLETIONSDIR)/pixcrypt $(SYSTEMDUSERDIR)/pixcrypt@.service \
                    $(SBINDIR)/mount.fuse.pixcrypt
install-contrib:
	install -d $(DESTDIR)$(COMPLETIONSDIR) $(DESTDIR)$(SYSTEMDUSERDIR) $(DESTDIR)$(SBINDIR)
	install -m 0644 contrib/pixcrypt.bash-completion $(DESTDIR)$(COMPLETIONSDIR)/pixcrypt
	sed 's|^Environment=PIXCRYPT=pixcrypt |Environment=PIXCRYPT=$(PREFIX)/bin/pixcrypt |' \
	  contrib/pixcrypt@.service >$(DESTDIR)$(SYSTEMDUSERDIR)/pixcrypt@.service
	sed 's|^PIXCRYPT=$${PIXCRYPT:-pixcrypt}$$|PIXCRYPT=$${PIXCRYPT:-$(PREFIX)/bin/pixcrypt}|' \
	  contrib/mount.pixcrypt >$(DESTDIR)$(SBINDIR)/mount.fuse.pixcrypt
	chmod 0755 $(DESTDIR)$(SBINDIR)/mount.fuse.pixcrypt

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/pixcrypt $(DESTDIR)$(PREFIX)/share/man/man1/pixcrypt.1 \
	  $(DESTDIR)$(PREFIX)/share/man/man5/pixcrypt-format.5
	rm -f $(addprefix $(DESTDIR),$(CONTRIB_INSTALLED))

format:
	clang-format -i $(wildcard */*.c */*.h tests/*/*.c tests/*/*.h)

clean:
	rm -rf build pixcrypt

# ---- Fuzzing ------------------------------------------------------------------------
# libFuzzer targets, one per tests/fuzz/fuzz_*.c, built with clang under ASan + UBSan;
# the codec and nn objects they test are compiled again with those flags into
# $(FUZZ_BUILD).  `make fuzz` runs each target for FUZZ_SECONDS on its seeds and the
# corpus it grew in earlier runs ($(FUZZ_BUILD)/corpus), then its regression inputs
# (tests/fuzz/regress/TARGET/); `make check` runs each briefly (tests/t/t0980-fuzz.t).
#   make fuzz FUZZ_SECONDS=600 FUZZ_TARGETS="png jpeg"
FUZZ_CC      ?= clang
FUZZ_BUILD   ?= build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
FUZZ_CFLAGS   = $(filter-out -O% -fsanitize%,$(CFLAGS)) -O1 -fno-omit-frame-pointer \
                -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB_OBJS = $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(wildcard codec/*.c nn/*.c))
# Arithmetic without parsing (the network, the sample cipher) gets no coverage
# instrumentation: it would only slow the targets down and add no guidance.
FUZZ_NOCOV    = $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(wildcard nn/*.c) codec/cipher.c codec/chaos.c)
FUZZ_COV      = -fsanitize=fuzzer-no-link
$(FUZZ_NOCOV): FUZZ_COV =
FUZZ_BINS     = $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(wildcard tests/fuzz/fuzz_*.c))

.PHONY: fuzz fuzz-build fuzz-cc

fuzz-build: $(FUZZ_BINS)

fuzz: deps
	@sh contrib/deps.sh fuzz
	$(MAKE) fuzz-build
	$(TEST_ENV) FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) \
		sh tests/fuzz/run.sh $(FUZZ_TARGETS)

# Fails, saying what to install, when clang or its libFuzzer runtime is missing.
fuzz-cc:
	@echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' | \
	  $(FUZZ_CC) -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1 || { \
	  echo "error: the fuzz targets need $(FUZZ_CC) with libFuzzer (Debian 12: clang" \
	    "libclang-rt-14-dev; \`sh contrib/deps.sh test\` installs them)" >&2; exit 1; }

$(FUZZ_LIB_OBJS): $(FUZZ_BUILD)/%.o: %.c | fuzz-cc
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) $(FUZZ_COV) -c -o $@ $<

$(FUZZ_BINS): $(FUZZ_BUILD)/%: tests/fuzz/%.c $(wildcard tests/fuzz/*.h) $(FUZZ_LIB_OBJS) | fuzz-cc
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_OBJS) $(LDLIBS)

-include $(shell find build -name '*.d' 2>/dev/null)
