# SPDX-License-Identifier: GPL-2.0-only
#
# make            build build/agentprof (BPF objects, skeleton, userspace)
# make deps       install the Debian packages needed to build, test and demo
# make test       build and run every test (needs root for the BPF tests)
# make test-kernels  the guest test on each kernel of KERNELS, in qemu (root; tests/vm/run)
# make vmlinux    regenerate vmlinux/vmlinux.h from this host's BTF

BUILD ?= build
CLANG ?= clang
BPFTOOL ?= bpftool
CC ?= gcc
PYTHON ?= /usr/bin/python3

ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/' -e 's/ppc64le/powerpc/' \
	-e 's/s390x/s390/' -e 's/riscv64/riscv/')

PKGS := libbpf json-c
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lbpf -ljson-c)

WARN := -Wall -Wextra -Werror
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 $(WARN) -Iinclude -Isrc -I$(BUILD) $(PKG_CFLAGS) -D_GNU_SOURCE
LDLIBS += $(PKG_LIBS) -lelf -lz -lm -lpthread
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) $(WARN) -Wno-unused-parameter \
	-Ivmlinux -Iinclude -Ibpf

BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRCS))
BPF_HDRS := $(wildcard bpf/*.bpf.h) $(wildcard include/agentprof/*.h)
SRCS := $(wildcard src/*.c)
OBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRCS))
HDRS := $(wildcard src/*.h) $(wildcard include/agentprof/*.h)

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
# Unit tests link every userspace module but main.
LIB_OBJS := $(filter-out $(BUILD)/obj/main.o,$(OBJS))

.PHONY: all deps test test-kernels unit vmlinux clean demo bench install
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

# The README's test command: installs what is missing, builds, runs everything.
test:
	./tools/deps.sh
	$(MAKE) all unit
	./tests/run

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

install: $(BUILD)/agentprof
	install -D -m 0755 $< $(DESTDIR)/usr/local/sbin/agentprof

clean:
	rm -rf $(BUILD)
