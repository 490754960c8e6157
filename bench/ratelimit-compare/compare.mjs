// Benchmark of rate-limiter-flexible's RateLimiterDynamo on DynamoDB Local,
// the same scenarios as shared/ratelimit's BenchmarkDecision and BenchmarkBurst
// (see BENCHMARKS.md (Rate limiting)). Loopback only; every loop is bounded.
//
//   DYNAMODB_ENDPOINT=http://127.0.0.1:8000 node compare.mjs [decisions=2000] [bursts=5]
import { DynamoDBClient, DynamoDB } from '@aws-sdk/client-dynamodb';
import { RateLimiterDynamo } from 'rate-limiter-flexible';

const endpoint = process.env.DYNAMODB_ENDPOINT;
if (!endpoint || !/^http:\/\/(127\.|localhost|\[::1\])/.test(endpoint)) {
  console.error('DYNAMODB_ENDPOINT must be a loopback DynamoDB Local, e.g. http://127.0.0.1:8000');
  process.exit(2);
}
const decisions = Number(process.argv[2] || 2000);
const bursts = Number(process.argv[3] || 5);
const CALLERS = [1, 8, 32];
const BURST = 200;
const CAPACITY = 20;

let calls = {};
function newClient() {
  const c = new DynamoDB({
    endpoint, region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  c.middlewareStack.add((next, ctx) => async (args) => {
    calls[ctx.commandName] = (calls[ctx.commandName] || 0) + 1;
    return next(args);
  }, { step: 'initialize', name: 'callCounter' });
  return c;
}
const totalCalls = (names) => names.reduce((n, k) => n + (calls[k] || 0), 0);
const decisionOps = ['GetItemCommand', 'UpdateItemCommand', 'PutItemCommand', 'DeleteItemCommand'];

const tableName = `rlf-bench-${Date.now().toString(36)}`;
async function limiter(client, opts) {
  return new Promise((resolve, reject) => {
    const l = new RateLimiterDynamo({ storeClient: client, tableName, ...opts }, (err) => (err ? reject(err) : resolve(l)));
  });
}

// consume resolves on admission and rejects with a RateLimiterRes on a deny;
// anything else is a store error and ends the run.
async function admitted(l, key) {
  try {
    await l.consume(key);
    return true;
  } catch (e) {
    if (e instanceof Error) throw e;
    return false;
  }
}

async function runCallers(n, callers, decide) {
  const lat = [];
  let next = 0, adm = 0;
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: callers }, async () => {
    for (let i = next++; i < n; i = next++) {
      const t0 = process.hrtime.bigint();
      if (await decide(i)) adm++;
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }));
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  lat.sort((a, b) => a - b);
  return { adm, perSec: n / secs, p50: lat[Math.floor(lat.length * 0.5)], p99: lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))] };
}

const keys = Array.from({ length: 1000 }, (_, i) => `ip:198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`);
const rows = [];
const row = (scenario, callers, r, cpd, extra = '') =>
  rows.push(`| ${scenario} | ${callers} | ${r.perSec.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${cpd.toFixed(3)} | ${extra} |`);

const client = newClient();
// points/duration as the Go benchmark: the allowed path never denies, the denied path allows one a day.
const allowL = await limiter(client, { keyPrefix: 'allow', points: 2_000_000, duration: 86400 });
const denyL = await limiter(client, { keyPrefix: 'deny', points: 1, duration: 86400, tableCreated: true });
for (const k of keys) await admitted(denyL, k);

for (const callers of CALLERS) {
  calls = {};
  const a = await runCallers(decisions, callers, (i) => admitted(allowL, `${callers}:${keys[i % keys.length]}`));
  if (a.adm !== decisions) throw new Error(`allowed path denied ${decisions - a.adm}`);
  row('allowed', callers, a, totalCalls(decisionOps) / decisions);
  calls = {};
  const d = await runCallers(decisions, callers, (i) => admitted(denyL, keys[i % keys.length]));
  if (d.adm !== 0) throw new Error(`denied path admitted ${d.adm}`);
  row('denied', callers, d, totalCalls(decisionOps) / decisions);
}

// Over-admission: 200 requests for one fresh client, C = 20, through 4
// limiter instances with their own clients, from `callers` concurrent callers.
// "rollover": the same right after the client's previous window has expired
// (3 s windows, so a burst ends well inside the new window; the longest burst
// is reported to show it did; the Go side's analogue is a stale GCRA item).
const instances = [];
for (let i = 0; i < 4; i++) instances.push(newClient());
const burstRows = [];
for (const kind of ['fresh', 'rollover']) {
  const duration = kind === 'fresh' ? 86400 : 3;
  const ls = [];
  for (const c of instances) ls.push(await limiter(c, { keyPrefix: `burst-${kind}`, points: CAPACITY, duration, tableCreated: true }));
  for (const callers of CALLERS) {
    let maxAdm = 0, over = 0, longest = 0;
    for (let op = 0; op < bursts; op++) {
      const key = `burst:${kind}:${callers}:${op}:${Date.now()}`;
      if (kind === 'rollover') {
        for (let i = 0; i < CAPACITY; i++) await admitted(ls[0], key);
        // Wait for the window to end (bounded: 3.1 s per burst).
        await new Promise((r) => setTimeout(r, 3100));
      }
      let next = 0, adm = 0;
      const b0 = performance.now();
      await Promise.all(Array.from({ length: callers }, async () => {
        for (let i = next++; i < BURST; i = next++) if (await admitted(ls[i % ls.length], key)) adm++;
      }));
      longest = Math.max(longest, performance.now() - b0);
      maxAdm = Math.max(maxAdm, adm);
      over += Math.max(0, adm - CAPACITY);
    }
    burstRows.push(`| ${kind} | ${callers} | ${bursts} | ${maxAdm} | ${(over / bursts).toFixed(2)} | ${longest.toFixed(0)} |`);
  }
}

// Edge of a fixed window, on the real clock: C = 20 per 1 s window. One
// request starts the client's window, then two bursts of 200 are fired 40 ms
// before and 10 ms after the first second ends; the metric is the most
// admitted in any 200 ms (GCRA's bound with the same rate: 20 + 4 = 24).
function maxInSpan(ts, span) {
  ts.sort((a, b) => a - b);
  let best = 0, j = 0;
  for (let i = 0; i < ts.length; i++) {
    while (ts[i] - ts[j] > span) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}
const sleepUntil = (t) => new Promise((r) => setTimeout(r, Math.max(0, t - performance.now())));
const edgeRows = [];
{
  const ls = [];
  for (const c of instances) ls.push(await limiter(c, { keyPrefix: 'edge', points: CAPACITY, duration: 1, tableCreated: true }));
  for (const callers of CALLERS) {
    let worst = 0;
    for (let op = 0; op < bursts; op++) {
      const key = `edge:${callers}:${op}:${Date.now()}`;
      const times = [];
      const fire = async () => {
        let next = 0;
        await Promise.all(Array.from({ length: callers }, async () => {
          for (let i = next++; i < BURST; i = next++) if (await admitted(ls[i % ls.length], key)) times.push(performance.now());
        }));
      };
      const t0 = performance.now();
      if (await admitted(ls[0], key)) times.push(performance.now());
      await sleepUntil(t0 + 960);
      await fire();
      await sleepUntil(t0 + 1010);
      await fire();
      worst = Math.max(worst, maxInSpan(times, 200));
    }
    edgeRows.push(`| ${callers} | ${bursts} | ${worst} |`);
  }
}

console.log(`rate-limiter-flexible RateLimiterDynamo on ${endpoint} (${decisions} decisions per row)\n`);
console.log('| scenario | callers | decisions/s | p50 ms | p99 ms | calls/decision | |');
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
console.log(`\nOver-admission: ${BURST} requests per burst, C = ${CAPACITY}, 4 instances\n`);
console.log('| start | callers | bursts | admitted (max) | over-admitted per burst | longest burst ms |');
console.log('|---|---|---|---|---|---|');
for (const r of burstRows) console.log(r);
console.log('\nFixed-window edge: most admitted in any 200 ms (C = 20 per 1 s; a GCRA of the same rate admits at most 24)\n');
console.log('| callers | runs | max admitted in 200 ms |');
console.log('|---|---|---|');
for (const r of edgeRows) console.log(r);
