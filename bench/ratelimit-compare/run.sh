#!/usr/bin/env bash
# Runs shared/ratelimit's benchmarks and rate-limiter-flexible's RateLimiterDynamo
# on the same DynamoDB Local, one after the other, in one run. `make bench-compare`
# calls it under bin/withdynamo (which exports DYNAMODB_ENDPOINT); it is not part
# of `make test`. Output: the Go benchmark lines, then the Node tables.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${DYNAMODB_ENDPOINT:?set DYNAMODB_ENDPOINT to a loopback DynamoDB Local (make bench-compare does)}"
GO=${GO:-go}
DECISIONS=${DECISIONS:-2000}
BURSTS=${BURSTS:-5}

if [ ! -f bench/ratelimit-compare/node_modules/.package-lock.json ]; then
  (cd bench/ratelimit-compare && npm ci --no-audit --no-fund)
fi

# Warm DynamoDB Local's JVM first, so neither side is measured against a cold emulator.
$GO test -count=1 -run '^$' -bench 'BenchmarkDecision/allowed' -benchtime=500x ./shared/ratelimit >/dev/null

echo "== shared/ratelimit (Go) on $DYNAMODB_ENDPOINT"
# The JSON log lines of the limiter go to stderr of the test binary; keep the report readable.
$GO test -count=1 -run '^$' -bench 'BenchmarkDecision' -benchtime="${DECISIONS}x" ./shared/ratelimit | grep -v '^{'
$GO test -count=1 -run '^$' -bench 'BenchmarkBurst|BenchmarkEdge' -benchtime="${BURSTS}x" ./shared/ratelimit | grep -v '^{'

echo
echo "== rate-limiter-flexible RateLimiterDynamo (Node $(node --version)) on $DYNAMODB_ENDPOINT"
node --no-warnings bench/ratelimit-compare/compare.mjs "$DECISIONS" "$BURSTS"
