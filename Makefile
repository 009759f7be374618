# driftgate: the commands people and CI run. CI runs `make test` only.
CARGO ?= cargo

.PHONY: run test e2e build check certs clean bench bench-load bench-sinks bench-apiserver soak fuzz

## run: the webhook on its embedded defaults (./policies, dev certificates in ./certs,
## journal ./drift-events.jsonl, https://127.0.0.1:8443)
run:
	$(CARGO) run --release --locked -- serve

## test: formatting, lints (warnings are errors) and every test, the end-to-end suite on a real
## kube-apiserver included when its binaries are found (one SKIPPED line otherwise); Helm for
## the chart's tests is fetched into .tools/ when it is not on PATH (scripts/fetch-helm.sh)
test:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	scripts/fetch-helm.sh >/dev/null
	$(CARGO) test --locked

## e2e: only the end-to-end suite; fails when the kube-apiserver binaries are missing
e2e:
	DRIFTGATE_E2E_REQUIRED=1 $(CARGO) test --locked --test e2e

## kube-harness: build etcd's companions kube-apiserver and kube-controller-manager (v1.32) into
## $KUBE_HARNESS/bin (default ~/.cache/driftgate/kube-harness/bin) from a Kubernetes source git
## directory: make kube-harness SRC=/path/to/kubernetes.git (README "End-to-end tests")
kube-harness:
	bash tests/e2e/build-harness.sh $(SRC)

## build: the release binary at target/release/driftgate
build:
	$(CARGO) build --release --locked

## check: validate the policy files in ./policies and ./policies/examples
check:
	$(CARGO) run --release --locked -- check policies
	$(CARGO) run --release --locked -- check policies/examples

## certs: a fresh development CA and localhost certificate in ./certs
certs:
	$(CARGO) run --release --locked -- certs --out certs --dns localhost --ip 127.0.0.1 --ip ::1 --force

## helm: copy the files the chart carries (policies/default.yaml, manifests/monitoring/) into
## charts/driftgate/files/ (tests/helm.rs fails while they differ), then lint the chart
.PHONY: helm
helm:
	DRIFTGATE_BLESS=1 $(CARGO) test --locked --test helm the_files_the_chart_carries_are_the_repositorys
	"$$(scripts/fetch-helm.sh)" lint --strict charts/driftgate

## manifests: regenerate manifests/base/ from policies/ (tests/manifests.rs fails while they differ)
.PHONY: manifests
manifests:
	DRIFTGATE_BLESS=1 $(CARGO) test --locked --test manifests committed_manifests_match_generation

clean:
	$(CARGO) clean
	rm -f drift-events.jsonl drift-events.jsonl.*

## bench: criterion benchmarks of the pure core and the journal (not part of `make test`)
bench:
	$(CARGO) bench --locked --bench decide --bench journal

## bench-sinks: refusals with three sinks (one receiver dead) against none, side by side, then
## RSS under steady refusals while the dead receiver's backlog waits on disk
bench-sinks:
	$(CARGO) build --release --locked --bin driftgate --example loadgen
	./target/release/examples/loadgen sinks

## bench-load: driftgate and a minimal baseline webhook under the same HTTPS load, side by side
bench-load:
	$(CARGO) build --release --locked --bin driftgate --example baseline --example loadgen
	./target/release/examples/loadgen

## bench-apiserver: median and p99 of sequential PUTs through a real kube-apiserver with no
## admission, a ValidatingAdmissionPolicy, driftgate refusing, and Argo CD writing past driftgate
bench-apiserver:
	$(CARGO) build --release --locked --bin driftgate --example apiserver
	./target/release/examples/apiserver

## soak: mixed load on driftgate for SOAK_SECONDS (300) with certificate rotation and policy
## reloads; prints requests, errors, journal lines versus denials, RSS at start and end
soak:
	$(CARGO) build --release --locked --bin driftgate --example loadgen
	./target/release/examples/loadgen soak

## fuzz: cargo-fuzz on review parsing, the decision core and the diff, FUZZ_SECONDS (60) each
## (installs cargo-fuzz; RUSTC_BOOTSTRAP lets the stable toolchain take libFuzzer's flags)
FUZZ_SECONDS ?= 60
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	for t in review_parse decide diff; do \
	  mkdir -p fuzz/corpus/$$t; \
	  [ $$t = diff ] || cp tests/fixtures/*.validating.json fuzz/corpus/$$t/; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir fuzz $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done
