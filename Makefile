# es: make test runs everything against a real PostgreSQL that the test
# harness (internal/pgtest) starts from local binaries, or the server named
# by ES_TEST_DATABASE_URL.

GO ?= go

.PHONY: test vet bench fmt demo quickstart

test: vet
	$(GO) test -race -count=1 -timeout 20m ./...
	cd esotel && $(GO) test -race -count=1 -timeout 5m ./...

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd esotel && $(GO) vet ./...

bench:
	./scripts/bench

fmt:
	gofmt -w $$(git ls-files '*.go')

demo:
	$(GO) run ./examples/orders

quickstart:
	$(GO) run ./examples/quickstart
