# pyruntime: set-up, demo and test automation.
#
# On a fresh Debian 12 machine, as root, two commands are enough:
#     make demo     # install everything, run a seed bundle, show what it saw
#     make test     # install everything, run the test suite
# Every step is idempotent and quick once done (stamp files under .build/).

PYTHON ?= python3
PREFIX ?= /usr/local
RUNTIME ?= pyruntime
DEMO_BUNDLE ?= microservice
PYTEST_ARGS ?=
BENCH_ARGS ?=
VMRUN ?=

BUILD := .build
STAMPS := $(BUILD)/stamps
VENV := .venv
ROOTFS := $(BUILD)/rootfs
BUNDLES := financial microservice web-app data-processor multi-tenant
BUNDLE_ROOTFS := $(foreach b,$(BUNDLES),bundles/$(b)/rootfs/.pyruntime-rootfs)
# Must match the hook paths in bundles/financial/config.json.
HOOKS_DIR := /usr/local/libexec/pyruntime-demo
FINANCIAL_HOOKS := security-audit-hook health-check-hook cleanup-hook
# The financial container's uid 10001 is host uid 200001 (its uidMappings):
# the directory bound at its /var/log must belong to that host uid.
FINANCIAL_LOG_DIR := bundles/financial/host/var/log/containers
FINANCIAL_HOST_UID := 200001

.DEFAULT_GOAL := help
.PHONY: help deps system-packages venv install uninstall hooks rootfs demo \
	test test-v2 test-engines lint bench bench-smoke clean distclean

# help: list the targets.
help:
	@echo "make demo      set everything up, run bundles/$(DEMO_BUNDLE) with $(RUNTIME)"
	@echo "make test      set everything up, run pytest (PYTEST_ARGS=...)"
	@echo "make deps      Debian packages + .venv with pyruntime installed editable"
	@echo "make install   link $(PREFIX)/bin/pyruntime to the venv's entry point"
	@echo "make rootfs    busybox rootfs in $(ROOTFS) and in each bundles/*/"
	@echo "make lint      ruff check and ruff format --check"
	@echo "make bench     pyruntime against runc (BENCH_ARGS=...); bench-smoke: quick"
	@echo "make clean     remove built rootfs trees and stamps (keeps .venv)"

# deps: everything needed to run pyruntime and its tests.
deps: system-packages venv

# system-packages: Debian packages; apt-get runs only if one is missing.
system-packages:
	@scripts/install-system-packages.sh

# venv: .venv with pyruntime installed editable, redone when pyproject changes.
venv: $(STAMPS)/venv $(STAMPS)/entry-point

$(STAMPS)/venv: pyproject.toml | system-packages $(STAMPS)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --disable-pip-version-check -e '.[test]'
	touch $@

# pip's entry script imports re before main(), milliseconds that every
# command would pay; a lean one replaces it (see src/pyruntime/cli/entry.py).
$(STAMPS)/entry-point: $(STAMPS)/venv src/pyruntime/cli/entry.py
	$(VENV)/bin/python -m pyruntime.cli.entry $(VENV)/bin/pyruntime
	touch $@

# The stamp dir ignores itself, so the build tree never shows in git status.
$(STAMPS):
	mkdir -p $@
	echo '*' > $(BUILD)/.gitignore

# install: put pyruntime on PATH; the entry point names the venv's python by
# absolute path, so engines can call it with an empty environment.
install: deps
	install -d $(DESTDIR)$(PREFIX)/bin
	ln -sfn $(abspath $(VENV))/bin/pyruntime $(DESTDIR)$(PREFIX)/bin/pyruntime
	env -i $(DESTDIR)$(PREFIX)/bin/pyruntime --version

# uninstall: remove what install and hooks put outside the tree.
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/pyruntime
	rm -rf $(HOOKS_DIR)

# hooks: the financial bundle's hook programs, at the paths its config names.
hooks: $(foreach h,$(FINANCIAL_HOOKS),$(HOOKS_DIR)/$(h))

$(HOOKS_DIR)/financial-hook: bundles/financial/hooks/financial-hook
	install -D -m 0755 $< $@

$(foreach h,$(FINANCIAL_HOOKS),$(HOOKS_DIR)/$(h)): $(HOOKS_DIR)/financial-hook
	ln -sfn financial-hook $@

# rootfs: the tests' rootfs plus one per bundle, and the bundles' host dirs.
rootfs: $(ROOTFS)/.pyruntime-rootfs $(BUNDLE_ROOTFS) $(FINANCIAL_LOG_DIR)

ROOTFS_INPUTS := scripts/build-rootfs.sh scripts/show-container.sh

$(ROOTFS)/.pyruntime-rootfs: $(ROOTFS_INPUTS) | system-packages $(STAMPS)
	scripts/build-rootfs.sh $(ROOTFS)

bundles/%/rootfs/.pyruntime-rootfs: $(ROOTFS_INPUTS) | system-packages
	scripts/build-rootfs.sh bundles/$*/rootfs $*

$(FINANCIAL_LOG_DIR):
	install -d -m 0750 -o $(FINANCIAL_HOST_UID) -g $(FINANCIAL_HOST_UID) $@

# demo: run bundles/$(DEMO_BUNDLE) with $(RUNTIME) and show what it saw
# (e.g. make demo RUNTIME=runc DEMO_BUNDLE=financial).
demo: deps rootfs install hooks
	scripts/demo.sh '$(RUNTIME)' bundles/$(DEMO_BUNDLE)

# test: the whole suite against the real kernel; the tests find the rootfs
# through PYRUNTIME_TEST_ROOTFS.
test: deps rootfs
	PYRUNTIME_TEST_ROOTFS=$(abspath $(ROOTFS)) \
		$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# test-v2: the cgroup v2 set (pytest -m cgroup_v2), natively on a v2 host, or
# in a VM when VMRUN names a tool that boots a v2 kernel (see the script);
# the VM's packages are installed first then.
test-v2: deps rootfs
	$(if $(VMRUN),scripts/install-system-packages.sh --vm)
	PYRUNTIME_TEST_ROOTFS=$(abspath $(ROOTFS)) VMRUN='$(VMRUN)' \
		scripts/test-cgroup-v2.sh $(PYTEST_ARGS)

# test-engines: containerd, CRI and podman driving pyruntime (and runc).
test-engines: deps rootfs install
	scripts/test-engines.sh

# Shell scripts by interpreter: POSIX sh ones also run under busybox or dash.
SH_SCRIPTS := scripts/build-rootfs.sh scripts/show-container.sh scripts/test-cgroup-v2.sh \
	bundles/financial/hooks/financial-hook
BASH_SCRIPTS := scripts/demo.sh scripts/install-system-packages.sh scripts/test-engines.sh \
	.ci/run

# lint: the same checks as review; shell scripts get a syntax check.
lint: deps
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	for f in $(SH_SCRIPTS); do sh -n $$f || exit 1; done
	for f in $(BASH_SCRIPTS); do bash -n $$f || exit 1; done

# bench: pyruntime and runc on the same bundles, alternated, medians of
# several rounds (a few minutes); the table is printed and written to
# benchmarks/results/latest.md (docs/performance.md records one run).
bench: deps rootfs
	$(VENV)/bin/python benchmarks/bench.py --rootfs $(abspath $(ROOTFS)) \
		--out benchmarks/results $(BENCH_ARGS)

# bench-smoke: one round with small counts, to show the benchmarks work
# (CI runs it; no speed makes it fail).
bench-smoke: deps rootfs
	$(VENV)/bin/python benchmarks/bench.py --smoke --rootfs $(abspath $(ROOTFS)) \
		$(BENCH_ARGS)

# clean: built rootfs trees, bundle run-time files and stamps; keeps .venv.
clean:
	rm -rf $(BUILD) $(foreach b,$(BUNDLES),bundles/$(b)/rootfs bundles/$(b)/host/var)

# distclean: clean, and the venv too.
distclean: clean
	rm -rf $(VENV)
