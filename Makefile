# driftgate: the commands people and CI run. CI runs `make test` only.
CARGO ?= cargo

.PHONY: run test build check certs clean

## run: the webhook on its embedded defaults (./policies, dev certificates in ./certs,
## journal ./drift-events.jsonl, https://127.0.0.1:8443)
run:
	$(CARGO) run --release --locked -- serve

## test: formatting, lints (warnings are errors) and every test
test:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) test --locked

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

clean:
	$(CARGO) clean
	rm -f drift-events.jsonl drift-events.jsonl.*
