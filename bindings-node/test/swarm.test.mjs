// Swarm-mode options and operations against the none driver: what can be
// checked without a daemon (the cluster itself is tested end to end by
// machine-cli/tests/swarm_e2e.rs). No network: only 127.0.0.1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const native = require('..')
const { Store } = native

function tempStore(t) {
  const dir = mkdtempSync(join(tmpdir(), 'dmrs-swarm-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return new Store(join(dir, 'store'))
}

async function rejection(promise) {
  try {
    await promise
  } catch (e) {
    return e
  }
  assert.fail('expected the promise to reject')
}

/** A loopback port nothing listens on. */
async function closedPort() {
  const server = createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

test('swarmOptions() declares the create flags', () => {
  const opts = Object.fromEntries(native.swarmOptions().map((o) => [o.flag, o]))
  for (const f of ['swarm', 'swarm-master', 'swarm-discovery', 'swarm-addr', 'swarm-opt', 'swarm-join-opt']) assert.ok(opts[f], f)
  assert.equal(opts['swarm-master'].kind, 'bool')
  assert.equal(opts['swarm-opt'].kind, 'stringList')
  assert.ok(native.errorCodes().includes('Swarm'))
})

test('joining a machine not in the store, or one that is no manager, is refused first', async (t) => {
  const store = tempStore(t)
  const url = { url: `tcp://127.0.0.1:${await closedPort()}` }
  const missing = await rejection(
    store.create('w', { driver: 'none', options: url, swarm: { swarm: true, 'swarm-discovery': 'machine://nope' } }),
  )
  assert.equal(missing.code, 'Swarm')
  assert.match(missing.message, /names machine "nope", which is not in the store/)
  await store.create('plain', { driver: 'none', options: url })
  const plainManager = await rejection(
    store.create('w', { driver: 'none', options: url, swarm: { swarm: true, 'swarm-discovery': 'machine://plain' } }),
  )
  assert.equal(plainManager.code, 'Swarm')
  assert.match(plainManager.message, /machine plain is not a swarm manager/)
  assert.deepEqual(await store.names(), ['plain'])
  const plain = await store.get('plain')
  const e = await rejection(plain.swarmNodes())
  assert.equal(e.code, 'Swarm')
  assert.match(e.message, /machine plain is not in a swarm/)
  assert.equal((await rejection(plain.swarmLeave())).code, 'Swarm')
  assert.equal((await rejection(plain.swarmJoin('nope'))).code, 'Swarm')
})

test('bad swarm options reject with InvalidOption naming the flag', async (t) => {
  const store = tempStore(t)
  for (const [swarm, flag] of [
    [{ swarm: true }, 'swarm-discovery'],
    [{ swarm: true, 'swarm-discovery': 'consul://10.0.0.1:8500' }, 'swarm-discovery'],
    [{ 'swarm-master': true, 'swarm-opt': ['task-history-limit=many'] }, 'swarm-opt'],
    [{ 'swarm-colour': 'blue' }, 'swarm-colour'],
  ]) {
    const e = await rejection(store.create('m', { driver: 'none', options: { url: 'tcp://127.0.0.1:2376' }, swarm }))
    assert.equal(e.code, 'InvalidOption', JSON.stringify(swarm))
    assert.ok(e.message.includes(flag), e.message)
  }
  assert.deepEqual(await store.names(), [])
})

test('a manager whose daemon does not answer stays listed with its cluster', async (t) => {
  const store = tempStore(t)
  const url = { url: `tcp://127.0.0.1:${await closedPort()}` }
  const e = await rejection(store.create('mgr', { driver: 'none', options: url, swarm: { 'swarm-master': true } }))
  assert.ok(e.code, e.message)
  const mgr = await store.get('mgr')
  assert.equal(await mgr.state(), 'Error')
  const s = (await mgr.inspect()).HostOptions.SwarmOptions
  assert.deepEqual([s.IsSwarm, s.Master, s.Discovery], [true, true, 'machine://mgr'])
  assert.deepEqual(await mgr.swarmMembers(), { cluster: 'machine://mgr', managers: ['mgr'], workers: [] })
  const [row] = await store.list({ timeout: 2 })
  assert.equal(row.swarm, 'mgr (master)')
  const none = await rejection(mgr.swarmManager())
  assert.equal(none.code, 'Swarm')
  assert.match(none.message, /no manager of the swarm machine:\/\/mgr answers/)
  await store.remove('mgr')
  assert.deepEqual(await store.names(), [])
})
