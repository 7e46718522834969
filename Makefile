# kTLS key updates with NIC TLS offload, policy in BPF.
#
#   make test        build what is missing, run every selftest in one VM boot
#   make demo        build what is missing, run the demo in the VM
#   make bench       build what is missing, run the benchmarks in the VM
#   make stress      build what is missing, 10 min of randomized stress in the VM
#   make install     install what make built (PREFIX=/usr/local, DESTDIR=)
#   make help        all targets
#
# Variables: DEBUG=1 (KASAN+kmemleak kernel), SUITES="smoke tls" (subset),
# STRESS_SECONDS=N (stress suite length: 60 in make test, 600 in make stress),
# TLS_FILTER="-v 13_aes_gcm" (harness filter for tls.c), TLS_FULL=1 (every
# tls.c case of every variant, ~12 min), VM_TIMEOUT=secs.
#
# Build outputs live under build/ (never committed). See README.md.

SHELL      := /bin/bash
TOP        := $(CURDIR)
B          := $(TOP)/build
KTREE      := $(B)/linux
TOOLS      := $(B)/tools
CLANG      ?= clang-19
LLVM_STRIP ?= llvm-strip-19
JOBS       ?= $(shell echo $$(($$(nproc) + 1)))

# DEBUG=1: KASAN + kmemleak kernel in its own output directory.
ifeq ($(DEBUG),1)
KOUT       := $(B)/kernel-debug
KFRAGS     := $(TOP)/kernel/config $(TOP)/kernel/config.debug
VM_FLAGS   += --kmemleak
# The whole suite takes about 4x as long on this kernel.
VM_TIMEOUT ?= 6000
else
KOUT       := $(B)/kernel
KFRAGS     := $(TOP)/kernel/config
endif
BZIMAGE    := $(KOUT)/arch/x86/boot/bzImage
# make kernel-builtin: TLS and netdevsim built in, compiled only
KOUT_BUILTIN := $(B)/kernel-builtin
VMLINUX    := $(KOUT)/vmlinux

LIBBPF_A   := $(TOOLS)/lib64/libbpf.a
BPFTOOL    := $(TOOLS)/bpftool/bpftool
UAPI_HDRS  := $(B)/uapi/include
VMLINUX_H  := $(B)/bpf/vmlinux.h

# Tests take this long at most before the guest is killed and the run fails.
VM_TIMEOUT ?= 2400
VM_RUN     := $(TOP)/vm/run --kernel $(BZIMAGE) --timeout $(VM_TIMEOUT) $(VM_FLAGS)

.PHONY: all deps kernel kernel-builtin tools bpf user selftests test demo kernel-export kernel-reset \
	install uninstall \
	kernel-tree clean distclean help bench stress test-full upstream-kernel test-upstream series-check FORCE
.DEFAULT_GOAL := all

all: kernel tools bpf user selftests

help:
	@sed -n 's/^\([a-z-]*\):.*## \(.*\)/  \1\t\2/p' $(MAKEFILE_LIST) | expand -t 18

deps: ## install missing Debian packages (apt-get)
	@$(TOP)/scripts/deps.sh

# ---------------------------------------------------------------- kernel
kernel-tree: deps ## create/refresh build/linux from kernel/patches
	@$(TOP)/kernel/tree.sh sync

kernel: $(BZIMAGE) ## build the guest kernel (DEBUG=1: KASAN+kmemleak)

kernel-builtin: kernel-tree ## check that the series builds with TLS and netdevsim built in (=y)
	@JOBS=$(JOBS) $(TOP)/kernel/build.sh $(KOUT_BUILTIN) $(TOP)/kernel/config $(TOP)/kernel/config.builtin

# build.sh rebuilds only when the tree or config changed; make then compares
# the outputs' times, so nothing downstream is redone after a no-op.
$(BZIMAGE) $(VMLINUX) &: kernel-tree FORCE
	@JOBS=$(JOBS) $(TOP)/kernel/build.sh $(KOUT) $(KFRAGS)

kernel-export: ## write build/linux's commits back to kernel/patches
	@$(TOP)/kernel/tree.sh export

kernel-reset: ## discard build/linux's own work, re-apply kernel/patches
	@$(TOP)/kernel/tree.sh reset

# ---------------------------------------------------------------- tools
# libbpf, bpftool and UAPI headers come from the patched tree, so they know
# about whatever the series adds. Each is rebuilt only when a file under its
# source directory is newer than the output; otherwise the output keeps its
# time and nothing that depends on it is redone.
stale = [ ! -e $(1) ] || [ -n "$$(find $(2) -newer $(1) -type f -print -quit)" ]

tools: $(LIBBPF_A) $(BPFTOOL) $(UAPI_HDRS)/.stamp

$(LIBBPF_A): kernel-tree FORCE
	@if $(call stale,$@,$(KTREE)/tools/lib/bpf); then \
		echo "  LIBBPF  $(TOOLS)"; mkdir -p $(TOOLS)/libbpf && \
		$(MAKE) -s -C $(KTREE)/tools/lib/bpf BUILD_STATIC_ONLY=1 OUTPUT=$(TOOLS)/libbpf/ \
			DESTDIR=$(TOOLS) prefix= -j$(JOBS) install >/dev/null && touch $@; fi

$(BPFTOOL): kernel-tree FORCE
	@if $(call stale,$@,$(KTREE)/tools/bpf/bpftool $(KTREE)/tools/lib/bpf); then \
		echo "  BPFTOOL $@"; mkdir -p $(TOOLS)/bpftool && \
		$(MAKE) -s -C $(KTREE)/tools/bpf/bpftool OUTPUT=$(TOOLS)/bpftool/ CLANG=$(CLANG) \
			LLVM_STRIP=$(LLVM_STRIP) LLVM_CONFIG=llvm-config-19 -j$(JOBS) >/dev/null && touch $@; fi

$(UAPI_HDRS)/.stamp: kernel-tree FORCE
	@if $(call stale,$@,$(KTREE)/include/uapi); then \
		echo "  HDRS    $(UAPI_HDRS)"; \
		$(MAKE) -s -C $(KTREE) O=$(B)/uapi headers_install INSTALL_HDR_PATH=$(B)/uapi >/dev/null && \
		touch $@; fi

# ---------------------------------------------------------------- BPF
BPF_CFLAGS := -g -O2 -Wall -Werror -target bpf -mcpu=v3 -D__TARGET_ARCH_x86 \
	-I$(B)/bpf -I$(TOOLS)/include -I$(TOP)/bpf

# The kernel's types, and tls.ko's where TLS is a module (struct
# tls_rekey_ops lives there then): its BTF split on top of vmlinux's.
$(VMLINUX_H): $(VMLINUX) | $(BPFTOOL)
	@mkdir -p $(dir $@)
	@echo "  GEN     $@"
	@ko=$(KOUT)/net/tls/tls.ko; \
	if [ -f $$ko ]; then $(BPFTOOL) -B $< btf dump file $$ko format c; \
	else $(BPFTOOL) btf dump file $< format c; fi > $@.tmp && mv $@.tmp $@

# Policies: bpf/<name>.bpf.c -> build/bpf/<name>.bpf.o
POLICIES := $(patsubst $(TOP)/bpf/%.bpf.c,$(B)/bpf/%.bpf.o,$(wildcard $(TOP)/bpf/*.bpf.c))

$(B)/bpf/%.bpf.o: $(TOP)/bpf/%.bpf.c $(TOP)/bpf/tls_rekey.bpf.h $(VMLINUX_H)
	@echo "  BPF     $@"
	@$(CLANG) $(BPF_CFLAGS) -c $< -o $@

bpf: $(VMLINUX_H) $(POLICIES) ## build the rekey policies (build/bpf/*.bpf.o)

# ---------------------------------------------------------------- loader
# user/tlsrekey embeds the built-in policies, every bpf/*.bpf.c, through
# bpftool skeletons listed in a generated builtins.h; its JSON goes through
# bpftool's json_writer from the kernel tree.
TLSREKEY := $(B)/user/tlsrekey
SKELS    := $(patsubst $(B)/bpf/%.bpf.o,$(B)/user/%.skel.h,$(POLICIES))
VERSION  := $(shell cat $(TOP)/VERSION)$(shell git -C $(TOP) describe --always --dirty \
	--exclude '*' 2>/dev/null | sed 's/^/ (git /; s/$$/)/')
JSON_WRITER := $(KTREE)/tools/bpf/bpftool/json_writer.c

$(B)/user/%.skel.h: $(B)/bpf/%.bpf.o | $(BPFTOOL)
	@mkdir -p $(dir $@)
	@echo "  SKEL    $@"
	@$(BPFTOOL) gen skeleton $< name $*_bpf > $@.tmp && mv $@.tmp $@

$(B)/user/builtins.h: $(SKELS)
	@echo "  GEN     $@"
	@{ echo '/* generated by the Makefile: a built-in policy per bpf/NAME.bpf.c */'; \
	  for p in $(notdir $(SKELS)); do echo "#include \"$$p\""; done; \
	  printf '#define BUILTIN_POLICIES(X)'; \
	  for p in $(notdir $(SKELS:.skel.h=)); do printf ' X(%s)' $$p; done; echo; } > $@

$(TLSREKEY): $(wildcard $(TOP)/user/*.[ch]) $(B)/user/builtins.h $(LIBBPF_A) $(TOP)/VERSION
	@echo "  CC      $@"
	@$(CC) -O2 -g -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
		-DTLSREKEY_VERSION='"$(VERSION)"' -I$(TOP)/user -I$(B)/user \
		-I$(KTREE)/tools/bpf/bpftool -I$(KTREE)/tools/include -I$(TOOLS)/include \
		-isystem $(UAPI_HDRS) -o $@ $(filter %.c,$^) $(JSON_WRITER) $(LIBBPF_A) -lelf -lz

user: $(TLSREKEY) ## build the loader (build/user/tlsrekey)

# ---------------------------------------------------------------- selftests
include selftests/Makefile.inc

# ---------------------------------------------------------------- run
test: all ## run every selftest in one VM boot (DEBUG=1: debug kernel)
	@$(VM_RUN) -- env TLS_FILTER="$(TLS_FILTER)" TLS_FULL="$(TLS_FULL)" SLOW_KERNEL="$(DEBUG)" \
		STRESS_SECONDS="$(STRESS_SECONDS)" $(TOP)/selftests/run_tests.sh $(B)/selftests $(SUITES)

# make test with every tls.c case, every offload fixture and variant with
# netdevsim's TLS driver in the trusting and the rx_deferred profiles too,
# and the OpenSSL runs of issue 19's acceptance: 50 + 20 lossy with SW kTLS
# and with both ends offloaded, 10 + 5 with TX or RX offloaded. About two
# hours. First it builds the kernel with TLS and netdevsim built in
# (make kernel-builtin), which only has to compile.
OPENSSL_FULL := sw:50:20 both:50:20 tx:10:5 rx:10:5
test-full: all kernel-builtin ## make test, longest variants included (every tls.c case, every driver profile, 2 GiB in SW, 190 OpenSSL runs), and the =y kernel build
	@$(TOP)/vm/run --kernel $(BZIMAGE) --timeout 10800 $(VM_FLAGS) -- env TLS_FULL=1 \
		SLOW_KERNEL="$(DEBUG)" SUITE_TIMEOUT=4800 OPENSSL_MODES="$(OPENSSL_FULL)" \
		$(TOP)/selftests/run_tests.sh $(B)/selftests $(SUITES)

# The series as a reviewer's bots take it: each patch of kernel/patches on
# top of the previous ones builds, passes checkpatch.pl --strict (but for
# kernel/checkpatch-exceptions) and boots into the smoke suite.
# SERIES="FIRST [LAST]" checks some of them.
series-check: tools selftests ## build, checkpatch and boot (smoke) the kernel series one patch at a time (not in CI)
	@JOBS=$(JOBS) $(TOP)/kernel/series-check.sh $(SERIES)

# Upstream's kernel (no series) as a second guest kernel: tls_rekey and the
# OpenSSL suite in SW mode on it tell a bug of the series from one of OpenSSL
# or of upstream.
UPSTREAM_KOUT := $(B)/kernel-upstream
upstream-kernel: deps ## build upstream's kernel (trixie-backports' linux-source, no series)
	@JOBS=$(JOBS) $(TOP)/kernel/upstream.sh $(UPSTREAM_KOUT)

test-upstream: upstream-kernel selftests ## tls_rekey and the OpenSSL suite (SW kTLS) on upstream's kernel
	@$(TOP)/vm/run --kernel $(UPSTREAM_KOUT)/arch/x86/boot/bzImage --timeout 2400 \
		-- env OPENSSL_MODES="$(or $(OPENSSL_MODES),sw:10:5)" \
		$(TOP)/selftests/run_tests.sh $(B)/selftests tls_rekey openssl

# The long randomized stress: 64 offloaded connections, key updates and faults.
STRESS_LONG = $(or $(STRESS_SECONDS),600)
stress: all ## boot the VM, run tls_stress for STRESS_SECONDS (default 600)
	@$(TOP)/vm/run --kernel $(BZIMAGE) --timeout $$(($(STRESS_LONG) + 900)) $(VM_FLAGS) \
		-- env STRESS_SECONDS=$(STRESS_LONG) SLOW_KERNEL="$(DEBUG)" \
		$(TOP)/selftests/run_tests.sh $(B)/selftests stress

demo: all ## boot the VM: bulk TLS both ways with key updates, faults, policies; picture in build/demo/
	@rm -rf $(B)/demo
	@$(VM_RUN) --out $(B)/demo -- $(TOP)/demo/demo.sh $(B)
	@echo "picture of the run: $(B)/demo/demo.png (samples: $(B)/demo/samples.csv)"

bench: all ## boot the VM, run the benchmarks, print the table; results.json and fig*.png in build/bench/ (FIGS="2 3": only those)
	@rm -rf $(B)/bench
	@$(VM_RUN) --out $(B)/bench -- $(TOP)/bench/bench.sh $(B) $(if $(FIGS),--figs "$(FIGS)")
	@echo "results: $(B)/bench/results.json, pictures: $(B)/bench/fig*.png (raw runs: $(B)/bench/raw.txt)"

# ---------------------------------------------------------------- install
# What an operator installs on a host whose kernel has the series: the
# loader, its manual and bash completion, the systemd units, the built-in
# policies' objects (for bpftool struct_ops register) and the header a third
# party writes a policy against. Installs what `make` built: it builds
# nothing and never calls apt-get.
PREFIX      ?= /usr/local
DESTDIR     ?=
SBINDIR     := $(PREFIX)/sbin
MANDIR      := $(PREFIX)/share/man
UNITDIR     := $(PREFIX)/lib/systemd/system
COMPDIR     := $(PREFIX)/share/bash-completion/completions
POLICYDIR   := $(PREFIX)/lib/tlsrekey
INCLUDEDIR  := $(PREFIX)/include/tlsrekey
UNITS       := $(wildcard $(TOP)/user/systemd/*)

install: ## install the loader, man page, units, policies, header (PREFIX, DESTDIR)
	@for f in $(TLSREKEY) $(POLICIES); do [ -f $$f ] || \
		{ echo "install: $$f is missing: run 'make' first" >&2; exit 1; }; done
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(COMPDIR) $(DESTDIR)$(POLICYDIR) $(DESTDIR)$(INCLUDEDIR)
	install -m 755 $(TLSREKEY) $(DESTDIR)$(SBINDIR)/tlsrekey
	install -m 644 $(TOP)/user/tlsrekey.8 $(DESTDIR)$(MANDIR)/man8/tlsrekey.8
	install -m 644 $(TOP)/user/bash-completion/tlsrekey $(DESTDIR)$(COMPDIR)/tlsrekey
	install -m 644 $(POLICIES) $(DESTDIR)$(POLICYDIR)/
	install -m 644 $(TOP)/bpf/tls_rekey.bpf.h $(DESTDIR)$(INCLUDEDIR)/
	@for u in $(UNITS); do \
		echo "  UNIT    $(DESTDIR)$(UNITDIR)/$$(basename $$u .in)"; \
		sed 's|@SBINDIR@|$(SBINDIR)|g' $$u > $(DESTDIR)$(UNITDIR)/$$(basename $$u .in) && \
		chmod 644 $(DESTDIR)$(UNITDIR)/$$(basename $$u .in) || exit 1; done

uninstall: ## remove what install installed (PREFIX, DESTDIR)
	rm -f $(DESTDIR)$(SBINDIR)/tlsrekey $(DESTDIR)$(MANDIR)/man8/tlsrekey.8 \
		$(DESTDIR)$(COMPDIR)/tlsrekey $(DESTDIR)$(INCLUDEDIR)/tls_rekey.bpf.h \
		$(patsubst %,$(DESTDIR)$(POLICYDIR)/%,$(notdir $(POLICIES))) \
		$(patsubst %,$(DESTDIR)$(UNITDIR)/%,$(notdir $(UNITS:.in=)))
	-rmdir $(DESTDIR)$(POLICYDIR) $(DESTDIR)$(INCLUDEDIR) 2>/dev/null

clean: ## remove userspace and BPF outputs (keeps kernel and tools)
	rm -rf $(B)/bpf $(B)/selftests $(B)/vm

distclean: ## remove all of build/
	rm -rf $(B)

FORCE:
