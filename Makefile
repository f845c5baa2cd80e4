# xling: two entry points, both installing what they need first.
#   make test   deps + weaviate + helm + vet + the whole test suite (chart included)
#               + every fuzz target for 15 s under a memory limit
#   make demo   deps + weaviate + the study's reduced default (about 15 minutes on
#               2 cores): report in study/report.md
# Builds are cached under .build/ (git-ignored) and in the Go caches.

WEAVIATE_VERSION := v1.35.2
BUILD := $(CURDIR)/.build
WEAVIATE_BIN := $(BUILD)/bin/weaviate-server
HELM_VERSION := v3.17.3
HELM_BIN := $(BUILD)/bin/helm
GO_TEST_FLAGS ?= -timeout 45m

.PHONY: deps weaviate helm chart build vet test fuzz demo image-check clean

deps:
	@./scripts/deps.sh

weaviate: $(WEAVIATE_BIN)

# Built once from the module proxy: about 4 minutes on 2 cores.
$(WEAVIATE_BIN):
	@echo "building weaviate-server $(WEAVIATE_VERSION) into $(BUILD)/bin (about 4 minutes, once)"
	GOBIN=$(BUILD)/bin GOWORK=off go install github.com/weaviate/weaviate/cmd/weaviate-server@$(WEAVIATE_VERSION)

helm: $(HELM_BIN)

# Built once from the module proxy: about 2 minutes on 2 cores.
$(HELM_BIN):
	@echo "building helm $(HELM_VERSION) into $(BUILD)/bin (once)"
	GOBIN=$(BUILD)/bin GOWORK=off go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

# Lints and renders charts/xling with its defaults and with every option on.
chart: helm
	$(HELM_BIN) lint --strict charts/xling
	$(HELM_BIN) lint --strict charts/xling -f charts/xling/ci/all-on.yaml
	$(HELM_BIN) template xling charts/xling >/dev/null
	$(HELM_BIN) template xling charts/xling -f charts/xling/ci/all-on.yaml --api-versions monitoring.coreos.com/v1 >/dev/null

# -buildvcs=auto: a go env with -buildvcs=false (this machine type's) would
# leave `xling version` without the commit.
build: deps
	go build -buildvcs=auto -o $(BUILD)/bin/xling ./cmd/xling

vet: deps
	go vet ./...

# OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads must not spin against Go's
# (cmd/xling sets it for itself; test binaries need it from outside).
test: deps weaviate helm
	go vet ./...
	OMP_WAIT_POLICY=PASSIVE XLING_WEAVIATE_BIN=$(WEAVIATE_BIN) XLING_HELM_BIN=$(HELM_BIN) go test $(GO_TEST_FLAGS) ./...
	./scripts/fuzz.sh

# Every fuzz target under a memory limit; FUZZTIME=5m for a longer run.
fuzz: deps
	./scripts/fuzz.sh

# The libtorch image's filesystem built from the Dockerfile's package list
# without a docker daemon (mmdebstrap), and `xling serve` probed inside it:
# about 2 minutes and 900 MB of downloads, as root; not part of make test.
IMAGE_CHECK := $(BUILD)/image-check
image-check: deps build
	rm -rf $(IMAGE_CHECK) && mkdir -p $(IMAGE_CHECK)
	$(BUILD)/bin/xling prepare --out $(IMAGE_CHECK)/data $(CURDIR)/../shared/data/xquad-r
	$(BUILD)/bin/xling train --data $(IMAGE_CHECK)/data --out $(IMAGE_CHECK)/run --arch transformer --size tiny --steps 2 --eval-every 2
	./scripts/image-check.sh $(BUILD)/bin/xling $(IMAGE_CHECK)/run/model $(IMAGE_CHECK)/rootfs

# The study with its demo budget: one seed, sampled questions; rerunning
# resumes. `xling experiment --budget full` runs the whole study.
demo: deps weaviate build
	XLING_WEAVIATE_BIN=$(WEAVIATE_BIN) $(BUILD)/bin/xling experiment --budget demo --out study --weaviate local --threads 2

clean:
	rm -rf $(BUILD) go.work go.work.sum
