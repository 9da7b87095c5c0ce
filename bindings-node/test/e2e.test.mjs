// End-to-end: the generic driver and the example JavaScript driver against a
// real host brought up by scripts/testhosts.sh (a network namespace with its
// own sshd; Debian's docker.io installed, no daemon running until provisioned).
//
// The hosts are announced by MT_HOSTS (addresses), MT_KEY (client key) and
// MT_SUDO_USER, read by testhosts.mjs. Suite 'node' owns host index 7 (the
// eighth; test-support/hosts.json) alone; its tests run one after another.
// Without that host they are skipped, unless CI is set: then they fail.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { busyboxTarball, docker, readmeExample, repoDir, runNode, tempDir, tempProject } from './helpers.mjs'
import { forSuite } from './testhosts.mjs'

const require = createRequire(import.meta.url)
const { Store } = require('..')
const run = promisify(execFile)

const HOST_INDEX = 7 // the suite's one host (test-support/hosts.json)
const suite = forSuite('node')
const { skip } = suite

function testHost() {
  return { ip: suite.host(HOST_INDEX).addr, key: suite.key, sudoUser: suite.sudoUser }
}

// The hosts share the machine's kernel: no bridge or iptables for their
// daemons; Docker is installed already.
const ENGINE = {
  'engine-opt': ['bridge=none', 'iptables=false', 'ip6tables=false'],
  'engine-install-url': 'none',
  'engine-label': ['origin=node-e2e'],
}

test('generic driver: create, ssh, copy, the docker CLI runs a container, list, remove', { skip }, async (t) => {
  const { ip, key } = testHost()
  const dir = tempDir(t)
  const store = new Store(join(dir, 'store'))
  const steps = []
  const machine = await store.create('node-e2e', {
    driver: 'generic',
    options: { 'generic-ip-address': ip, 'generic-ssh-key': key, 'generic-ssh-user': 'root' },
    engine: ENGINE,
    onProgress: (step) => steps.push(step),
  })
  assert.ok(steps.includes('Docker is up and running!'), steps.join('\n'))
  assert.equal(machine.driverName, 'generic')
  assert.equal(await machine.state(), 'Running')
  assert.equal(await machine.url(), `tcp://${ip}:2376`)

  const out = await machine.ssh('hostname; id -u; echo oops >&2; exit 3')
  assert.deepEqual(out.stdout.trim().split('\n'), ['node-e2e', '0'])
  assert.equal(out.stderr.trim(), 'oops')
  assert.equal(out.exitStatus, 3)

  const local = join(dir, 'up.txt')
  writeFileSync(local, 'payload\n')
  await machine.copyTo(local, '/tmp/node-e2e-up.txt')
  await machine.copyFrom('/tmp/node-e2e-up.txt', join(dir, 'down.txt'))
  assert.equal(readFileSync(join(dir, 'down.txt'), 'utf8'), 'payload\n')

  // the real docker CLI, configured by envVars()
  const tarball = await busyboxTarball(dir)
  await docker(machine, dir, 'import', tarball, 'mt-busybox:node')
  const said = await docker(machine, dir, 'run', '--rm', '--network', 'none', 'mt-busybox:node', 'echo', 'hello-from-node')
  assert.equal(said.trim(), 'hello-from-node')
  const labels = await docker(machine, dir, 'info', '--format', '{{json .Labels}}')
  assert.match(labels, /origin=node-e2e/)
  assert.match(labels, /provider=generic/)

  // config(): separate arguments for the docker CLI, no shell in between
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DOCKER_')))
  const { stdout: os } = await run('docker', [...(await machine.config()), 'version', '--format', '{{.Server.Os}}'],
    { env: { ...clean, DOCKER_CONFIG: join(dir, 'docker-config') } })
  assert.equal(os.trim(), 'linux')

  const [row] = await store.list({ timeout: 10 })
  assert.equal(row.name, 'node-e2e')
  assert.equal(row.state, 'Running')
  assert.equal(row.url, `tcp://${ip}:2376`)
  assert.match(row.dockerVersion, /^v\d+\./)
  assert.equal(row.error, '')

  // the same daemon adopted from another store with the machine's certificates
  const mdir = join(store.path, 'machines', 'node-e2e')
  const other = new Store(join(dir, 'other'))
  const tls = {
    'tls-ca-cert': join(mdir, 'ca.pem'),
    'tls-client-cert': join(mdir, 'cert.pem'),
    'tls-client-key': join(mdir, 'key.pem'),
  }
  const url = { url: `tcp://${ip}:2376` }
  const adopted = await other.create('adopted', { driver: 'none', options: url, engine: tls })
  const version = await machine.dockerVersion()
  assert.equal(version.os, 'linux')
  assert.deepEqual(await adopted.dockerVersion(), version)
  assert.deepEqual(await adopted.status(), { name: 'adopted', state: 'Running', error: '' })
  let refused
  try {
    await other.create('wrong', { driver: 'none', options: url, engine: { ...tls, 'tls-ca-cert': join(other.path, 'certs', 'ca.pem') } })
  } catch (e) {
    refused = e
  }
  assert.equal(refused?.code, 'Engine')
  assert.deepEqual(await other.names(), ['adopted'])

  await store.remove('node-e2e')
  assert.deepEqual(await store.names(), [])
})

test('the JavaScript inventory driver example provisions a test host', { skip }, async (t) => {
  const { ip, key, sudoUser } = testHost()
  const dir = tempDir(t)
  const inventory = join(dir, 'fleet.json')
  writeFileSync(inventory, JSON.stringify({ 'node-inventory': { address: ip, user: sudoUser, key } }))
  const engineArgs = [
    ...ENGINE['engine-opt'].flatMap((o) => ['--engine-opt', o]),
    '--engine-install-url',
    ENGINE['engine-install-url'],
  ]
  const example = join(repoDir, 'examples', 'node_custom_driver.js')
  let stdout
  try {
    ;({ stdout } = await run(process.execPath, [example, inventory, 'node-inventory', ...engineArgs], {
      env: { ...process.env, MACHINE_STORAGE_PATH: join(dir, 'store') },
      timeout: 600_000,
    }))
  } catch (e) {
    assert.fail(`the example failed:\n${e.stdout}${e.stderr}`)
  }
  assert.match(stdout, new RegExp(`^node-inventory runs Linux \\S+ \\(exit status 0\\), Docker at tcp://${ip.replaceAll('.', '\\.')}:2376$`, 'm'))
  assert.match(stdout, new RegExp(`^node-inventory\\tinventory\\tRunning\\ttcp://${ip.replaceAll('.', '\\.')}:2376\\tv\\d+`, 'm'))
  assert.match(stdout, /^\[node-inventory\] removed$/m)
})

test('the README example with the generic driver runs as written', { skip }, async (t) => {
  const { ip, key } = testHost()
  const project = tempProject(t)
  const { stdout } = await runNode(project, 'example.mjs', readmeExample('generic'), {
    MACHINE_STORAGE_PATH: join(tempDir(t), 'store'),
    MACHINE_IP: ip,
    MACHINE_SSH_KEY: key,
  })
  assert.match(stdout, /^Docker is up and running!$/m)
  assert.match(stdout, /^0 Linux \S+$/m)
  assert.match(stdout, /^\d+\.\d+\S*$/m, 'the server version from the docker CLI')
  assert.match(stdout, /name: 'web1'/)
})
