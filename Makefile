# vpc-cni: the two entry points are `make demo` and `make test`; both install
# what they need first (Debian packages, as root).

CARGO ?= cargo
# One profile for tests, binaries and the demo, so nothing is compiled twice.
PROFILE_DIR := target/debug

.PHONY: deps build test lint demo bench chaos props image clean

deps:
	@bash scripts/install-deps.sh
	# Every crate of the lock file, for every platform: the supply-chain test reads them all
	# offline (cargo metadata), and a build fetches only what this machine compiles.
	$(CARGO) fetch --locked

build: deps
	$(CARGO) build --workspace --bins

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Every test, root ones included (they create network namespaces).
test: lint build
	@if [ "$$(id -u)" -ne 0 ]; then echo "make test needs root: the netlink and end-to-end tests create network namespaces" >&2; exit 1; fi
	$(CARGO) test --workspace -- --test-threads=2

# The property tests alone (every test named prop_...), at a campaign's count: `make test`
# runs them at 1,000 cases each with the unit tests; `make props` (and `make chaos`) at
# PROPTEST_CASES each.
PROPTEST_CASES ?= 100000
props: deps
	VPC_CNI_PROPTEST_CASES=$(PROPTEST_CASES) $(CARGO) test --workspace --lib -- prop_

demo: build
	@if [ "$$(id -u)" -ne 0 ]; then echo "make demo needs root: it creates network namespaces" >&2; exit 1; fi
	$(PROFILE_DIR)/vpc-cni-demo

# The image the DaemonSet runs (deploy/image/build.sh): a docker-archive of the release
# binaries, Debian's nft and their libraries. Load it with `ctr -n k8s.io images import`,
# `podman load` or `docker load`, or push it with skopeo. `make test` builds its own from the
# test profile's binaries (integration/tests/containerd/kubelet_path.rs).
IMAGE_TAG ?= vpc-cni:$(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
image: deps
	$(CARGO) build --release -p ipamd -p vpc-cni --bins
	bash deploy/image/build.sh --bin-dir target/release --tag $(IMAGE_TAG) --out target/vpc-cni-image.tar

# Benchmarks run optimised binaries (a second profile, built only here).
bench: deps
	@if [ "$$(id -u)" -ne 0 ]; then echo "make bench needs root: it creates network namespaces" >&2; exit 1; fi
	$(CARGO) build --release -p vpc-cni-integration --bin vpc-cni-bench --bin vpc-sim
	# Last and on their own, so the binaries measured are the ones `make image` ships (a
	# workspace build would turn on the test harness's features in them).
	$(CARGO) build --release -p ipamd -p vpc-cni --bins
	target/release/vpc-cni-bench $(if $(ONLY),--only $(ONLY),--out docs/bench.md)

# The reliability campaign (not in CI's time budget; `make test` runs a short version of
# each scenario): the property tests at PROPTEST_CASES each, run beside every scenario at
# full size and a 30-minute soak; rewrites docs/reliability.md.
chaos: build
	@if [ "$$(id -u)" -ne 0 ]; then echo "make chaos needs root: it creates network namespaces" >&2; exit 1; fi
	$(CARGO) test --workspace --lib --no-run
	rm -f target/chaos-proptest.rc
	{ VPC_CNI_PROPTEST_CASES=$(PROPTEST_CASES) $(CARGO) test --workspace --lib -- prop_ --test-threads=1 > target/chaos-proptest.log 2>&1; echo $$? > target/chaos-proptest.rc; } & \
	$(PROFILE_DIR)/vpc-cni-chaos --proptest-log target/chaos-proptest.log --proptest-rc target/chaos-proptest.rc --proptest-cases $(PROPTEST_CASES) --out docs/reliability.md

clean:
	$(CARGO) clean
