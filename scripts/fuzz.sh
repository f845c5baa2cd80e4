#!/bin/sh
# Runs every fuzz target for a short time under a memory limit: a parser
# that allocates what a hostile header asks for fails here, not in a user's
# server. FUZZTIME (default 50000x: inputs, not seconds) per target;
# MEMLIMIT_KB (default 4 GB) of address space per process.
#
# A count, because Go 1.26's fuzzer can report a bare "context deadline
# exceeded", with no input, when a duration ends while a worker is starved
# of CPU (go.dev/issue/75804, fixed in Go 1.27); it did so in a clean-clone
# run here. 50,000 inputs take 2-30 s a target on 2 shared cores.
#
#   scripts/fuzz.sh            every target
#   FUZZTIME=5m scripts/fuzz.sh
set -eu
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-50000x}
limit=${MEMLIMIT_KB:-4000000}
bin=.build/fuzz
mkdir -p "$bin"
for target in \
	sidecar:FuzzDecodeVectorsRequest \
	internal/safetensors:FuzzParse \
	vectorizer/modelconfig:FuzzRead \
	vectorizer/tokenize:FuzzLoadTokenizer; do
	pkg=${target%%:*}
	fn=${target#*:}
	exe=$bin/$(echo "$pkg" | tr / _).test
	# Compiled outside the limit: the compiler and linker need more.
	# -fuzz builds with the coverage instrumentation fuzzing is guided by.
	go test -c -fuzz "^$fn\$" -o "$exe" "./$pkg"
	echo "fuzz $pkg $fn for $fuzztime (address space limit ${limit} KB)"
	# A test binary runs in its package directory, as go test runs it, so
	# that a failing input lands in the package's testdata/fuzz.
	(cd "$pkg" && ulimit -v "$limit" && "$OLDPWD/$exe" -test.run '^$' -test.fuzz "^$fn\$" \
		-test.fuzztime "$fuzztime" -test.fuzzcachedir "$OLDPWD/$bin/cache") || {
		echo "fuzz: $fn failed; the input is in $pkg/testdata/fuzz/$fn" >&2
		exit 1
	}
done
