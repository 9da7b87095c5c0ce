// ssh-config, docker contexts, export/import and the objects of status()
// on machines of the none driver (no network; the end-to-end runs with the
// real ssh and docker CLIs are in machine-cli/tests/export_e2e.rs).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, readdirSync, rmSync, existsSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { Store } = require('..')

function tempDir(t) {
  const dir = mkdtempSync(join(tmpdir(), 'dmrs-node-port-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

async function rejection(promise) {
  try {
    await promise
  } catch (e) {
    return e
  }
  assert.fail('expected the promise to reject')
}

const URL_OPTS = { url: 'tcp://127.0.0.1:2376' }

test('status is an object; ssh-config skips and names machines without SSH', async (t) => {
  const store = new Store(join(tempDir(t), 'store'))
  const m = await store.create('n1', { driver: 'none', options: URL_OPTS })
  assert.deepEqual(await m.status(), { name: 'n1', state: 'Running', error: '' })
  assert.equal(await store.sshConfig(), '')
  assert.equal((await rejection(store.sshConfig(['n1']))).code, 'Ssh')
  assert.equal((await rejection(m.sshConfig())).code, 'Ssh')
})

test('docker context written, refused for another store, removed with the machine', async (t) => {
  const dir = tempDir(t)
  const saved = process.env.DOCKER_CONFIG
  process.env.DOCKER_CONFIG = join(dir, 'docker')
  t.after(() => {
    if (saved === undefined) delete process.env.DOCKER_CONFIG
    else process.env.DOCKER_CONFIG = saved
  })
  const store = new Store(join(dir, 'store'))
  const m = await store.create('n1', { driver: 'none', options: URL_OPTS })
  assert.equal(await m.dockerContext(), 'n1')
  const id = createHash('sha256').update('n1').digest('hex')
  const meta = JSON.parse(readFileSync(join(dir, 'docker/contexts/meta', id, 'meta.json'), 'utf8'))
  assert.deepEqual(meta.Endpoints.docker, { Host: 'tcp://127.0.0.1:2376', SkipTLSVerify: false })
  assert.equal(statSync(join(dir, 'docker/contexts/tls', id, 'docker/key.pem')).mode & 0o777, 0o600)
  const other = new Store(join(dir, 'other'))
  const twin = await other.create('n1', { driver: 'none', options: URL_OPTS })
  assert.equal((await rejection(twin.dockerContext())).code, 'AlreadyExists')
  await store.remove('n1')
  assert.equal(existsSync(join(dir, 'docker/contexts/meta', id)), false)
  assert.equal(await twin.removeDockerContext(), false)
})

test('export and import: paths rewritten, passphrase checked, nothing written when refused', async (t) => {
  const dir = tempDir(t)
  const store = new Store(join(dir, 'store'))
  const other = new Store(join(dir, 'other'))
  const m = await store.create('n1', { driver: 'none', options: URL_OPTS })
  const plain = await m.exportArchive()
  assert.ok(Buffer.isBuffer(plain))
  const imported = await other.importArchive(plain)
  const cfg = await imported.inspect()
  assert.equal(cfg.HostOptions.AuthOptions.StorePath, join(dir, 'other/machines/n1'))
  assert.equal(JSON.stringify(cfg).includes(join(dir, 'store')), false)
  assert.equal((await rejection(other.importArchive(plain))).code, 'AlreadyExists')

  const secret = await m.exportArchive({ passphrase: 'pw one' })
  assert.equal(secret.subarray(0, 21).toString(), 'age-encryption.org/v1')
  const before = readdirSync(join(dir, 'other/machines')).sort()
  assert.equal((await rejection(other.importArchive(secret, { name: 'n2' }))).code, 'InvalidOption')
  assert.equal((await rejection(other.importArchive(secret, { name: 'n2', passphrase: 'pw two' }))).code, 'InvalidOption')
  assert.deepEqual(readdirSync(join(dir, 'other/machines')).sort(), before)
  const n2 = await other.importArchive(secret, { name: 'n2', passphrase: 'pw one' })
  assert.equal((await n2.envVars()).DOCKER_CERT_PATH, join(dir, 'other/machines/n2'))
  assert.deepEqual(await other.names(), ['n1', 'n2'])
})
