// Driver plugins from Node: the Go test plugin (tests/goplugin, built with
// Debian's golang-go) serves a machine that the `machine` CLI creates and the
// package then loads and drives, and the reverse. The plugin is forced over
// the built-in name `none` (MACHINE_PLUGIN_DRIVERS), so no provisioning runs
// and no test host is needed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, symlinkSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { repoDir, tempDir } from './helpers.mjs'
import { ciIsSet } from './testhosts.mjs'

const require = createRequire(import.meta.url)
const { Store } = require('../index.js')
const machineBin = join(repoDir, 'target', 'debug', 'machine')

function haveGo() {
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' })
    return existsSync(machineBin)
  } catch {
    return false
  }
}
const why = 'go (golang-go) and target/debug/machine are needed (scripts/test.sh installs and builds them)'
const skip = haveGo() ? false : ciIsSet() ? false : why

function setup(t) {
  if (!haveGo()) throw new Error(why)
  const dir = tempDir(t)
  const bin = join(dir, 'bin')
  execFileSync('go', ['build', '-o', join(bin, 'docker-machine-driver-gotest'), './cmd/docker-machine-driver-gotest'], {
    cwd: join(repoDir, 'tests', 'goplugin'),
    env: { ...process.env, GOPROXY: 'off', GOFLAGS: '-mod=mod', GOCACHE: join(dir, 'gocache') },
    timeout: 300_000,
  })
  symlinkSync(join(bin, 'docker-machine-driver-gotest'), join(bin, 'docker-machine-driver-none'))
  const saved = { ...process.env }
  process.env.PATH = `${bin}:${process.env.PATH}`
  process.env.MACHINE_PLUGIN_DRIVERS = 'none'
  process.env.GOTEST_CALL_LOG = join(dir, 'calls.log')
  process.env.MACHINE_STORAGE_PATH = join(dir, 'store')
  t.after(() => {
    for (const k of ['PATH', 'MACHINE_PLUGIN_DRIVERS', 'GOTEST_CALL_LOG', 'MACHINE_STORAGE_PATH']) {
      if (saved[k] === undefined) delete process.env[k]
      else process.env[k] = saved[k]
    }
  })
  const cli = (...args) => execFileSync(machineBin, args, { encoding: 'utf8', timeout: 120_000 })
  return { dir, cli }
}

test('a machine the CLI created through a plugin is driven from Node', { skip }, async (t) => {
  const { dir, cli } = setup(t)
  cli('create', '-d', 'none', '--none-ip-address', '10.5.5.5', '--none-tags', 'n', 'cli2')
  const store = new Store(join(dir, 'store'))
  const m = await store.get('cli2')
  assert.equal(m.driverName, 'none')
  assert.equal(await m.state(), 'Running')
  assert.equal(await m.url(), 'tcp://10.5.5.5:2376')
  await m.stop()
  assert.equal(await m.state(), 'Stopped')
  await m.start()
  assert.equal(await m.state(), 'Running')
  assert.deepEqual((await m.inspect()).Driver.Tags, ['n'])
  await store.remove('cli2')
  assert.match(readFileSync(join(dir, 'calls.log'), 'utf8'), /Remove cli2/)
})

test('a plugin machine created from Node is seen by the CLI', { skip }, async (t) => {
  const { dir, cli } = setup(t)
  const store = new Store(join(dir, 'store'))
  const steps = []
  const m = await store.create('node1', {
    driver: 'none',
    options: { 'none-ip-address': '10.6.6.6', 'none-ssh-port': 2201 },
    onProgress: (s) => steps.push(s),
  })
  // the plugin's log lines during Create are steps, labelled with the machine's name
  assert.deepEqual(
    steps.filter((s) => s.startsWith('(node1) ')),
    ['(node1) creating the machine', '(node1) machine node1 is created'],
  )
  assert.equal(await m.state(), 'Running')
  assert.equal((await m.inspect()).Driver.SSHPort, 2201)
  assert.equal(cli('ls', '--format', '{{.Name}} {{.State}} {{.URL}}').trim(), 'node1 Running tcp://10.6.6.6:2376')
  await assert.rejects(store.create('node2', { driver: 'none', options: { 'none-no-such-flag': 'x' } }), (e) => e.code === 'InvalidOption')
  await store.remove('node1')
})

test('a plugin and a JavaScript driver are refused by the same rule', { skip }, async (t) => {
  // one adapter (machine_core::foreign) for plugins and driver objects
  const { dir } = setup(t)
  const store = new Store(join(dir, 'store'))
  class BadPort {
    get enginePort() {
      return 70000
    }
    create() {
      throw new Error('not to be called')
    }
    remove() {}
    state() {}
    ip() {}
  }
  store.registerDriver('badport', BadPort)
  const rule = 'is not a port (a whole number in 1..=65535)'
  const js = await store.create('bp1', { driver: 'badport' }).then(
    () => assert.fail('created'),
    (e) => e,
  )
  const plugin = await store
    .create('bp2', { driver: 'none', options: { 'none-ip-address': '10.7.7.7', 'none-engine-port': 70000 } })
    .then(
      () => assert.fail('created'),
      (e) => e,
    )
  assert.equal(js.code, 'Driver')
  assert.equal(plugin.code, 'Driver')
  assert.ok(js.message.includes(`enginePort 70000 ${rule}`), js.message)
  assert.ok(plugin.message.includes(`EnginePort 70000 ${rule}`), plugin.message)
  assert.doesNotMatch(readFileSync(join(dir, 'calls.log'), 'utf8'), /Create bp2/)
  assert.deepEqual(await store.names(), [])
})

test('plugins on PATH are listed with the drivers', { skip }, async (t) => {
  const { dir } = setup(t)
  const drivers = new Store(join(dir, 'store')).drivers()
  assert.deepEqual(drivers, [...drivers].sort())
  for (const name of ['gotest', 'none', 'generic', 'qemu']) {
    assert.equal(drivers.filter((d) => d === name).length, 1, `${name}: ${drivers}`)
  }
  // listing started no plugin
  assert.ok(!existsSync(join(dir, 'calls.log')))
})
