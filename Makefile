# SPDX-License-Identifier: GPL-2.0-only
#
# make            build build/agentprof (BPF objects, skeleton, userspace)
# make deps       install the Debian packages needed to build, test and demo
# make test       build and run every test (needs root for the BPF tests)
# make test SANITIZE=1  the same against an ASan+UBSan build (build-san/)
# make test-kernels  the guest test on each kernel of KERNELS, in qemu (root; tests/vm/run)
# make vmlinux    regenerate vmlinux/vmlinux.h from this host's BTF
# make validate-plan  plan's predictions against a Locust ramp of the demo agent (root)
# make fuzz       every libFuzzer target for FUZZ_SECONDS each (tests/fuzz/run)
# make soak       record (SOAK_MINUTES, 30) against the demo agent, then export 30 min at 1,000 req/s

# SANITIZE=1: the userspace (agentprof, unit tests) with ASan and UBSan, in
# build-san/ unless BUILD says otherwise; `make test SANITIZE=1` runs every
# test against it.
ifeq ($(SANITIZE),1)
BUILD ?= build-san
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
endif
BUILD ?= build
CLANG ?= clang
BPFTOOL ?= bpftool
CC ?= gcc
PYTHON ?= /usr/bin/python3

ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/' -e 's/ppc64le/powerpc/' \
	-e 's/s390x/s390/' -e 's/riscv64/riscv/')

PKGS := libbpf json-c libmicrohttpd libcurl yaml-0.1
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lbpf -ljson-c -lmicrohttpd -lcurl -lyaml)

WARN := -Wall -Wextra -Werror
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 $(WARN) -Iinclude -Isrc -I$(BUILD) $(PKG_CFLAGS) -D_GNU_SOURCE $(SAN_FLAGS)
LDLIBS += $(PKG_LIBS) -lelf -lz -lm -lpthread
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) $(WARN) -Wno-unused-parameter \
	-Ivmlinux -Iinclude -Ibpf

BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRCS))
BPF_HDRS := $(wildcard bpf/*.bpf.h) $(wildcard include/agentprof/*.h)
SRCS := $(wildcard src/*.c src/plan/*.c)
OBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRCS))
HDRS := $(wildcard src/*.h src/plan/*.h) $(wildcard include/agentprof/*.h)

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
# Unit tests link every userspace module but main.
LIB_OBJS := $(filter-out $(BUILD)/obj/main.o,$(OBJS))

.PHONY: all deps test test-kernels unit vmlinux clean demo bench install fuzz fuzz-build soak \
	validate-plan
all: $(BUILD)/agentprof $(BUILD)/tests/cpu_server

$(BUILD)/bpf $(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(BPF_HDRS) vmlinux/vmlinux.h | $(BUILD)/bpf
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/agentprof.bpf.o: $(BPF_OBJS)
	$(BPFTOOL) gen object $@ $^

$(BUILD)/agentprof.skel.h: $(BUILD)/agentprof.bpf.o
	$(BPFTOOL) gen skeleton $< name agentprof_bpf > $@

$(BUILD)/obj/%.o: src/%.c $(HDRS) $(BUILD)/agentprof.skel.h | $(BUILD)/obj
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/agentprof: $(OBJS)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/cpu_server: tests/servers/cpu_server.c tests/servers/httpd.c tests/servers/httpd.h \
			   | $(BUILD)/tests
	$(CC) -std=gnu11 -O2 $(WARN) -pthread $(filter %.c,$^) -o $@

# The minimal server of bench/run.sh and bench/compare.sh.
$(BUILD)/bench/tiny_server: bench/tiny_server.c
	mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 $(WARN) -pthread $< -o $@

# bench/perf-bpf.sh: perf samples of a BPF program per source line.
$(BUILD)/bench/bpf_lines: bench/bpf_lines.c
	mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(PKG_LIBS) -o $@

$(BUILD)/tests/test_%: tests/unit/test_%.c $(LIB_OBJS) $(wildcard tests/unit/*.h) | $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests/unit $< $(LIB_OBJS) $(LDLIBS) -o $@

# The fuzz targets' code, replayed over tests/fuzz/regress/ by a unit test.
$(BUILD)/tests/test_fuzz_replay: $(wildcard tests/fuzz/*.c tests/fuzz/*.h tests/unit/*.h)

# test_pyrt_offsets: the CPython offsets table against the headers of each CPython in
# /usr/include (python3.X-dev; debug builds' python3.Xd left out), one object per version
# (tests/unit/pyrt_headers.h says why). With none installed the test builds and fails.
PY_INC_VERSIONS := $(shell ls -d /usr/include/python3.* 2>/dev/null | sed -n 's|^/usr/include/python\(3\.[0-9]*\)$$|\1|p')
PY_HDR_OBJS := $(patsubst %,$(BUILD)/tests/pyrt_headers-%.o,$(PY_INC_VERSIONS))

# -isystem: warnings inside CPython's headers are not ours to fix.
$(BUILD)/tests/pyrt_headers-%.o: tests/unit/pyrt_headers.c tests/unit/pyrt_headers.h src/pyrt_offsets.h \
				 | $(BUILD)/tests
	$(CC) $(CFLAGS) -DPy_BUILD_CORE -isystem /usr/include/python$* -isystem /usr/include/python$*/internal \
		-Itests/unit -c $< -o $@

$(BUILD)/tests/test_pyrt_offsets: tests/unit/test_pyrt_offsets.c $(PY_HDR_OBJS) $(LIB_OBJS) \
				  tests/unit/test.h tests/unit/pyrt_headers.h | $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests/unit $< $(PY_HDR_OBJS) $(LIB_OBJS) $(LDLIBS) -o $@

unit: $(UNIT_BINS)

# libFuzzer targets (tests/fuzz/): the parsers that see outside bytes, built
# with clang, ASan and UBSan into build/fuzz/, each with the modules it needs.
FUZZ_TARGETS := http pg fingerprint profile request
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS := -g -O1 -std=gnu11 -fno-sanitize-recover=all -Iinclude -Isrc -Itests/unit \
	-Itests/fuzz $(PKG_CFLAGS) -D_GNU_SOURCE $(WARN)
FUZZ_MODS_http := http route
FUZZ_MODS_fingerprint := fingerprint
FUZZ_MODS_pg := pg pghold fingerprint hist profile outfile peers services
FUZZ_MODS_profile := profile hist outfile peers table breakdown report html diff diff_stats \
	diff_text diff_json diff_html services
FUZZ_MODS_request := request http route peers pg pghold fingerprint hist profile outfile services
FUZZ_BINS := $(patsubst %,$(BUILD)/fuzz/fuzz_%,$(FUZZ_TARGETS))

$(BUILD)/fuzz/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@

define FUZZ_RULE
$(BUILD)/fuzz/fuzz_$(1): tests/fuzz/fuzz_$(1).c tests/fuzz/fuzz.h $(patsubst %,$(BUILD)/fuzz/obj/%.o,$(FUZZ_MODS_$(1)))
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined $$(filter %.c %.o,$$^) \
		$(PKG_LIBS) -lm -o $$@
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_RULE,$(t))))

fuzz-build: $(FUZZ_BINS)

# Each target for FUZZ_SECONDS from its seeds (the unit tests' inputs) and
# regression inputs; a crash is saved under build/fuzz/crashes/.
fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) BUILD=$(BUILD) ./tests/fuzz/run $(FUZZ_TARGETS)

# The README's test command: installs what is missing, builds, runs everything.
test:
	./tools/deps.sh
	$(MAKE) all unit fuzz-build
	BUILD=$(BUILD) ./tests/run

# The kernel matrix: Debian packages booted in qemu, and "host" (tests/vm/run).
KERNELS ?= linux-image-amd64 host
test-kernels:
	./tools/deps.sh
	$(MAKE) all unit
	KERNELS="$(KERNELS)" ./tests/vm/run

vmlinux:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > vmlinux/vmlinux.h

deps:
	./tools/deps.sh

# The README's main job: the demo agent under Locust load, profiled.
demo:
	./tools/deps.sh
	$(MAKE) all
	./tools/demo.sh

# Overhead, measured side by side (root): BENCH_ARGS=--quick for one short round.
bench: all
	./tools/deps.sh --bench
	./bench/run.sh $(BENCH_ARGS)
	$(PYTHON) bench/export.py

# Soak (root): record left on for SOAK_MINUTES against the demo agent under
# Locust, its RSS, descriptors and map fill sampled every minute
# (bench/soak.py); then agentprof export's RSS over 30 minutes at 1,000
# requests/s (bench/export.py). bench/README.md.
SOAK_MINUTES ?= 30
soak: all $(BUILD)/bench/tiny_server
	./tools/deps.sh
	SOAK_MINUTES=$(SOAK_MINUTES) $(PYTHON) bench/soak.py
	$(PYTHON) bench/export.py --soak

# plan's predictions against a Locust load test of the demo agent (root; about
# 25 minutes; tools/validate_plan.py, figures in bench/README.md).
validate-plan:
	./tools/deps.sh
	$(MAKE) all
	$(PYTHON) tools/validate_plan.py

install: $(BUILD)/agentprof
	install -D -m 0755 $< $(DESTDIR)/usr/local/sbin/agentprof

clean:
	rm -rf $(BUILD) build-san
