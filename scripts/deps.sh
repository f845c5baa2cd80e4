#!/bin/sh
# Installs what xling needs on a Debian machine, then adapts gotch to the
# installed libtorch. Idempotent: a second run only checks.
#
#   LIBTORCH=/path   build against that libtorch (holding include/ and lib/)
#                    instead of Debian's libtorch-dev.
set -eu

# libopenblas0-pthread: libtorch finds BLAS through the libblas.so.3
# alternative, which is the reference BLAS (15x slower) until it is installed.
# python3-torch: the independent implementation for parity tests and benchmarks.
# sentencepiece: the reference for the SentencePiece tokenizer tests.
# python3-fastapi, python3-uvicorn: the t2v-transformers-style server that
# xling bench serve --against t2v measures xling against.
# prometheus (with promtool): the chart's alerts and dashboard tested for real.
# libtcmalloc-minimal4: xling's malloc (see internal/torchx.Allocator).
# libgloo-dev: the headers of Gloo, which libtorch's c10d needs to build
# xling's distributed-training layer (internal/c10d).
pkgs="g++ libgloo-dev libopenblas0-pthread libtcmalloc-minimal4 python3-torch python3-numpy python3-fastapi python3-uvicorn prometheus sentencepiece"
if [ -z "${LIBTORCH:-}" ]; then
	pkgs="libtorch-dev $pkgs"
elif [ ! -d "$LIBTORCH" ]; then
	echo "deps: LIBTORCH=$LIBTORCH is not a directory; point it at a libtorch holding include/ and lib/ (for PyTorch: .../site-packages/torch), or unset it to use Debian's libtorch-dev" >&2
	exit 1
fi

missing=""
if command -v dpkg-query >/dev/null 2>&1; then
	for p in $pkgs; do
		case "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" in
		*"install ok installed"*) ;;
		*) missing="$missing $p" ;;
		esac
	done
elif [ -z "${LIBTORCH:-}" ]; then
	echo "deps: this is not a Debian system (no dpkg-query): install libtorch yourself and set LIBTORCH=/path/to/libtorch" >&2
	exit 1
fi

if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps: missing Debian packages:$missing" >&2
		echo "deps: run as root:  apt-get update && apt-get install -y --no-install-recommends$missing" >&2
		exit 1
	fi
	echo "deps: installing$missing (libtorch-dev is large: a few minutes on first install)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing >/dev/null
fi

# HuggingFace's own tokenizers (the Rust library through its npm package):
# the test-only reference xling's tokenizer is held to, as python3-torch is
# for the encoder. Needs node (Debian's nodejs works where none is present).
hf=.build/hftokenizers
hfver=0.23.2
if ! grep -qs "\"version\": \"$hfver\"" "$hf/node_modules/tokenizers/package.json"; then
	if ! command -v npm >/dev/null 2>&1; then
		if [ "$(id -u)" != 0 ]; then
			echo "deps: npm is missing; run as root: apt-get install -y --no-install-recommends nodejs npm" >&2
			exit 1
		fi
		apt-get install -y -q --no-install-recommends nodejs npm >/dev/null
	fi
	echo "deps: installing the npm package tokenizers@$hfver into $hf (the tokenizer tests' reference)"
	mkdir -p "$hf"
	npm install --silent --no-audit --no-fund --prefix "$hf" "tokenizers@$hfver" >/dev/null
fi

# GOWORK=off: the go.work being regenerated may point at a copy that is gone.
GOWORK=off go run ./cmd/gotch-adapt -out .build/gotch -work go.work
