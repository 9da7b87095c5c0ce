// Unit-level tests: a store in a temporary directory, the none driver, error
// codes, env rendering, drivers written in JavaScript and the event loop.
// No network: the only sockets are on 127.0.0.1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const native = require('..')
const { Store } = native

function tempStore(t) {
  const dir = mkdtempSync(join(tmpdir(), 'dmrs-node-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return new Store(join(dir, 'store'))
}

/** Resolves with the error a promise rejects with; fails if it resolves. */
async function rejection(promise) {
  try {
    await promise
  } catch (e) {
    return e
  }
  assert.fail('expected the promise to reject')
}

const URL_OPTS = { url: 'tcp://127.0.0.1:2376' }

test('a new store is empty', async (t) => {
  const store = tempStore(t)
  assert.deepEqual(await store.names(), [])
  assert.deepEqual(await store.list(), [])
  assert.ok(store.path.endsWith('store'))
})

test('get of a missing machine rejects with NotFound and the machine name', async (t) => {
  const store = tempStore(t)
  const e = await rejection(store.get('ghost'))
  assert.ok(e instanceof Error)
  assert.equal(e.code, 'NotFound')
  assert.equal(e.machine, 'ghost')
  assert.match(e.message, /ghost/)
})

test('an unknown driver option rejects with InvalidOption naming the flag', async (t) => {
  const store = tempStore(t)
  const e = await rejection(store.create('n1', { driver: 'none', options: { ...URL_OPTS, 'bogus-flag': 'x' } }))
  assert.equal(e.code, 'InvalidOption')
  assert.equal(e.machine, 'n1')
  assert.match(e.message, /bogus-flag/)
  const bad = await rejection(store.create('n1', { driver: 'none', options: { url: 'http://nope' } }))
  assert.equal(bad.code, 'InvalidOption')
  assert.match(bad.message, /url/)
  const missing = await rejection(store.create('n1', { driver: 'none' }))
  assert.equal(missing.code, 'InvalidOption')
  assert.match(missing.message, /url/)
  const engine = await rejection(store.create('n1', { driver: 'none', options: URL_OPTS, engine: { 'engine-env': 'NOEQUALS' } }))
  assert.equal(engine.code, 'InvalidOption')
  assert.match(engine.message, /engine-env/)
  const unknownEngine = await rejection(store.create('n1', { driver: 'none', options: URL_OPTS, engine: { 'engine-bogus': 'x' } }))
  assert.equal(unknownEngine.code, 'InvalidOption')
  assert.deepEqual(await store.names(), [], 'nothing was created')
})

test('unknown driver and invalid names have their own codes', async (t) => {
  const store = tempStore(t)
  const e = await rejection(store.create('n1', { driver: 'no-such-driver' }))
  assert.equal(e.code, 'UnknownDriver')
  assert.match(e.message, /no-such-driver/)
  const n = await rejection(store.create('bad name!', { driver: 'none', options: URL_OPTS }))
  assert.equal(n.code, 'InvalidName')
})

test('none driver: create, env, envVars, config, inspect, list and remove', async (t) => {
  const store = tempStore(t)
  const steps = []
  const m = await store.create('n1', { driver: 'none', options: URL_OPTS, onProgress: (s) => steps.push(s) })
  assert.equal(m.name, 'n1')
  assert.equal(m.driverName, 'none')
  assert.ok(steps.length > 0, 'progress was reported')
  assert.equal(await m.state(), 'Running')
  assert.equal(await m.url(), 'tcp://127.0.0.1:2376')
  assert.equal(await m.ip(), '127.0.0.1')
  const certPath = join(store.path, 'machines', 'n1')

  assert.equal(
    await m.env(),
    [
      'export DOCKER_TLS_VERIFY="1"',
      'export DOCKER_HOST="tcp://127.0.0.1:2376"',
      `export DOCKER_CERT_PATH="${certPath}"`,
      'export DOCKER_MACHINE_NAME="n1"',
      '',
    ].join('\n'),
  )
  assert.match(await m.env({ shell: 'fish' }), /^set -gx DOCKER_HOST "tcp:\/\/127\.0\.0\.1:2376";$/m)
  assert.match(await m.env({ shell: 'powershell' }), /^\$Env:DOCKER_HOST = "tcp:\/\/127\.0\.0\.1:2376"$/m)
  assert.deepEqual(JSON.parse(await m.env({ shell: 'json' })), {
    DOCKER_TLS_VERIFY: '1',
    DOCKER_HOST: 'tcp://127.0.0.1:2376',
    DOCKER_CERT_PATH: certPath,
    DOCKER_MACHINE_NAME: 'n1',
  })
  const unset = await m.env({ unset: true })
  assert.match(unset, /^unset DOCKER_TLS_VERIFY$/m)
  assert.doesNotMatch(unset, /tcp:/)
  const noProxy = await m.env({ noProxy: true })
  assert.match(noProxy, /^export NO_PROXY=".*127\.0\.0\.1"$/m)
  const badShell = await rejection(m.env({ shell: 'klingon' }))
  assert.equal(badShell.code, 'InvalidOption')
  assert.match(badShell.message, /klingon/)

  assert.deepEqual(await m.envVars(), {
    DOCKER_TLS_VERIFY: '1',
    DOCKER_HOST: 'tcp://127.0.0.1:2376',
    DOCKER_CERT_PATH: certPath,
    DOCKER_MACHINE_NAME: 'n1',
  })
  assert.deepEqual(await m.config(), [
    '--tlsverify',
    `--tlscacert=${certPath}/ca.pem`,
    `--tlscert=${certPath}/cert.pem`,
    `--tlskey=${certPath}/key.pem`,
    '-H=tcp://127.0.0.1:2376',
  ])
  const inspected = await m.inspect()
  assert.equal(inspected.Name, 'n1')
  assert.equal(inspected.DriverName, 'none')
  assert.equal(inspected.Driver.URL, 'tcp://127.0.0.1:2376')
  assert.deepEqual(inspected, JSON.parse(readFileSync(join(certPath, 'config.json'), 'utf8')))

  const again = await store.get('n1')
  assert.equal(again.driverName, 'none')
  assert.deepEqual(await store.names(), ['n1'])
  const dup = await rejection(store.create('n1', { driver: 'none', options: URL_OPTS }))
  assert.equal(dup.code, 'AlreadyExists')
  assert.equal(dup.machine, 'n1')

  const [row] = await store.list({ timeout: 2 })
  assert.equal(row.name, 'n1')
  assert.equal(row.driverName, 'none')
  assert.equal(row.state, 'Running')
  assert.equal(row.url, 'tcp://127.0.0.1:2376')
  assert.equal(typeof row.dockerVersion, 'string')
  assert.equal(typeof row.error, 'string')
  assert.equal(typeof row.responseTimeMs, 'number')

  await store.remove('n1')
  assert.deepEqual(await store.names(), [])
  assert.equal(existsSync(certPath), false)
  const gone = await rejection(store.remove('n1'))
  assert.equal(gone.code, 'NotFound')
})

test('what the none driver cannot do rejects with NotSupported or Ssh', async (t) => {
  const store = tempStore(t)
  const m = await store.create('n1', { driver: 'none', options: URL_OPTS })
  for (const op of ['start', 'stop', 'restart', 'kill']) {
    const e = await rejection(m[op]())
    assert.equal(e.code, 'NotSupported', op)
    assert.equal(e.machine, 'n1')
  }
  const e = await rejection(m.ssh('true'))
  assert.equal(e.code, 'Ssh')
  assert.equal(e.machine, 'n1')
  assert.equal((await rejection(m.copyFrom('/etc/hostname', join(store.path, 'x')))).code, 'Ssh')
})

/** A driver for daemons that already run, kept in memory: no network needed. */
class MemoryDriver {
  static options = [
    { flag: 'memory-url', help: 'Daemon URL', required: true },
    { flag: 'memory-weight', kind: 'int', default: 3 },
    { flag: 'memory-tags', kind: 'stringList' },
  ]
  static calls = []

  // A new machine gets its create options; a loaded one what save() returned.
  constructor(context, options) {
    MemoryDriver.calls.push(['new', context.machineName, options])
    this.context = context
    this.url_ = options['memory-url']
    this.weight = options['memory-weight']
    this.running = options.running ?? false
  }

  get needsProvisioning() {
    return false
  }

  save() {
    return { 'memory-url': this.url_, 'memory-weight': this.weight, running: this.running }
  }

  async create() {
    await new Promise((r) => setTimeout(r, 10))
    this.running = true
  }
  async remove() {
    MemoryDriver.calls.push(['remove', this.context.machineName])
  }
  state() {
    return this.running ? 'Running' : 'Stopped'
  }
  async ip() {
    return '127.0.0.1'
  }
  async url() {
    return this.url_
  }
  async stop() {
    this.running = false
  }
  async start() {
    this.running = true
  }
}

test('a driver written in JavaScript serves create, get, list, start/stop and remove', async (t) => {
  const store = tempStore(t)
  MemoryDriver.calls = []
  store.registerDriver('memory', MemoryDriver)
  assert.deepEqual(store.drivers(), ['amazonec2', 'generic', 'memory', 'none', 'qemu'])
  const m = await store.create('mem1', {
    driver: 'memory',
    options: { 'memory-url': 'tcp://127.0.0.1:1', 'memory-tags': ['a', 'b'] },
  })
  assert.equal(m.driverName, 'memory')
  assert.equal(await m.state(), 'Running')
  assert.equal(await m.url(), 'tcp://127.0.0.1:1')
  const [kind, name, options] = MemoryDriver.calls[0]
  assert.deepEqual([kind, name], ['new', 'mem1'])
  assert.deepEqual(options, { 'memory-url': 'tcp://127.0.0.1:1', 'memory-weight': 3, 'memory-tags': ['a', 'b'] })

  // saved in config.json after the base fields, and given back to the factory
  const saved = (await m.inspect()).Driver
  assert.equal(saved.MachineName, 'mem1')
  assert.equal(saved['memory-url'], 'tcp://127.0.0.1:1')
  assert.equal(saved.running, true)
  MemoryDriver.calls = []
  const loaded = await store.get('mem1')
  assert.equal(await loaded.state(), 'Running')
  assert.deepEqual(MemoryDriver.calls[0], [
    'new',
    'mem1',
    { 'memory-url': 'tcp://127.0.0.1:1', 'memory-weight': 3, running: true },
  ])

  await loaded.stop()
  assert.equal(await (await store.get('mem1')).state(), 'Stopped', 'the stop was saved')
  await loaded.start()
  const kill = await rejection(loaded.kill())
  assert.equal(kill.code, 'NotSupported')
  assert.equal(kill.machine, 'mem1')

  const rows = await store.list({ timeout: 2 })
  assert.equal(rows.length, 1)
  assert.equal(rows[0].name, 'mem1')
  assert.equal(rows[0].driverName, 'memory')
  assert.equal(rows[0].state, 'Running')
  assert.equal(rows[0].url, 'tcp://127.0.0.1:1')

  await store.remove('mem1')
  assert.ok(MemoryDriver.calls.some(([k, name]) => k === 'remove' && name === 'mem1'))
  assert.deepEqual(await store.names(), [])
})

test('a driver factory may be a function, async, with the options given at registration', async (t) => {
  const store = tempStore(t)
  const made = []
  const factory = async (context, options) => {
    made.push(options)
    const url = options.where
    return {
      needsProvisioning: false,
      create() {},
      remove() {},
      state: () => 'Running',
      ip: () => '127.0.0.1',
      url: () => url,
    }
  }
  store.registerDriver('fn', factory, [{ flag: 'where', required: true }])
  const m = await store.create('f1', { driver: 'fn', options: { where: 'tcp://127.0.0.1:7' } })
  assert.equal(await m.url(), 'tcp://127.0.0.1:7')
  assert.equal((await m.inspect()).Driver.where, 'tcp://127.0.0.1:7', 'without save(), the create options are kept')
  assert.equal(await (await store.get('f1')).url(), 'tcp://127.0.0.1:7')
  assert.deepEqual(made, [{ where: 'tcp://127.0.0.1:7' }, { where: 'tcp://127.0.0.1:7' }])
})

test('the default driver is the CLI\'s', async (t) => {
  const store = tempStore(t)
  const e = await rejection(store.create('d1', { options: { 'generic-ip-address': '192.0.2.10' } }))
  assert.equal(e.code, 'InvalidOption')
  assert.match(e.message, /driver qemu has no option generic-ip-address/)
  assert.deepEqual(await store.names(), [])
})

test('engineOptions() is the list the CLI builds its create flags from', () => {
  const opts = Object.fromEntries(native.engineOptions().map((o) => [o.flag, o]))
  for (const f of ['engine-install-url', 'engine-opt', 'engine-env', 'engine-label', 'tls-san']) assert.ok(opts[f], f)
  assert.equal(opts['engine-opt'].kind, 'stringList')
  assert.equal(opts['engine-install-url'].envVar, 'MACHINE_DOCKER_INSTALL_URL')
  const bin = new URL('../../target/debug/machine', import.meta.url).pathname
  if (!existsSync(bin)) return
  const help = require('node:child_process').execFileSync(bin, ['create', '--help'], { encoding: 'utf8' })
  for (const flag of Object.keys(opts)) assert.ok(help.includes(`--${flag} `), flag)
})

test('every error code of the core is documented in the type declarations', () => {
  const codes = native.errorCodes()
  assert.ok(codes.length >= 18, `${codes}`)
  const dts = readFileSync(new URL('../index.d.ts', import.meta.url), 'utf8')
  const documented = dts.slice(dts.indexOf('export interface MachineError'))
  for (const code of codes) assert.ok(documented.includes('`' + code + '`'), `code ${code} is not documented`)
})

test('list is bounded by its timeout even when a driver factory never settles', async (t) => {
  const store = tempStore(t)
  let hang = false
  const factory = async (context, options) => {
    if (hang) return new Promise(() => {})
    return {
      needsProvisioning: false,
      create() {},
      remove() {},
      state: () => 'Running',
      ip: () => '127.0.0.1',
      url: () => 'tcp://127.0.0.1:1',
    }
  }
  store.registerDriver('hang', factory, [])
  await store.create('h1', { driver: 'hang' })
  hang = true
  const started = Date.now()
  const [row] = await store.list({ timeout: 1 })
  assert.equal(row.name, 'h1')
  assert.equal(row.state, 'Timeout')
  assert.match(row.error, /loading/)
  assert.ok(Date.now() - started < 5000, `list took ${Date.now() - started} ms`)
})

test('failures of a JavaScript driver reject with its message', async (t) => {
  const store = tempStore(t)
  class Picky extends MemoryDriver {
    async preCreateCheck() {
      if (this.url_.endsWith(':9')) throw new Error('port 9 is reserved')
    }
    async create() {
      if (this.url_.endsWith(':8')) throw new Error('out of capacity')
      return super.create()
    }
  }
  store.registerDriver('picky', Picky)
  const pre = await rejection(store.create('p1', { driver: 'picky', options: { 'memory-url': 'tcp://127.0.0.1:9' } }))
  assert.equal(pre.code, 'PreCreateCheck')
  assert.match(pre.message, /port 9 is reserved/)
  assert.deepEqual(await store.names(), [], 'a refused pre-create check leaves nothing behind')

  const failed = await rejection(store.create('p2', { driver: 'picky', options: { 'memory-url': 'tcp://127.0.0.1:8' } }))
  assert.equal(failed.code, 'Driver')
  assert.equal(failed.machine, 'p2')
  assert.match(failed.message, /out of capacity/)
  const p2 = await store.get('p2')
  assert.equal(await p2.state(), 'Error', 'a failed creation is recorded')
  await store.remove('p2')

  const missing = await rejection(store.create('p3', { driver: 'picky', options: {} }))
  assert.equal(missing.code, 'InvalidOption')
  assert.match(missing.message, /memory-url/)
  const badInt = await rejection(
    store.create('p3', { driver: 'picky', options: { 'memory-url': 'tcp://x:1', 'memory-weight': 'heavy' } }),
  )
  assert.equal(badInt.code, 'InvalidOption')
  assert.match(badInt.message, /memory-weight/)
})

test('what is not a driver is refused', async (t) => {
  const store = tempStore(t)
  const refused = (e) => e.code === 'InvalidOption' && e.machine === undefined
  assert.throws(() => store.registerDriver('x', {}), (e) => refused(e) || e instanceof TypeError)
  assert.throws(
    () => store.registerDriver('x', class {}, [{ flag: 'x-y', kind: 'float' }]),
    (e) => refused(e) && /float/.test(e.message),
  )
  store.registerDriver('empty', class {})
  const e = await rejection(store.create('e1', { driver: 'empty' }))
  assert.equal(e.code, 'Driver')
  assert.equal(e.machine, 'e1')
  assert.match(e.message, /no method create\(\)/)
  class BadPort extends MemoryDriver {
    get enginePort() {
      throw new Error('no port today')
    }
  }
  store.registerDriver('bad-port', BadPort)
  const port = await rejection(store.create('e3', { driver: 'bad-port', options: { 'memory-url': 'tcp://x:1' } }))
  assert.equal(port.code, 'Driver')
  assert.equal(port.machine, 'e3')
  assert.match(port.message, /no port today/)
  store.registerDriver('throws', () => {
    throw new Error('no capacity left')
  })
  const thrown = await rejection(store.create('e2', { driver: 'throws' }))
  assert.equal(thrown.code, 'Driver')
  assert.match(thrown.message, /no capacity left/)
  assert.deepEqual(await store.names(), [])
})

test("the core's rules refuse a driver object up front, as in Python", async (t) => {
  const store = tempStore(t)
  const cases = [
    ['port-70000', { enginePort: 70000 }, /enginePort 70000 is not a port/],
    ['port-bool', { enginePort: true }, /enginePort true is not a port/],
    ['port-text', { enginePort: '2376' }, /enginePort "2376" is not a port/],
    ['needs-text', { needsProvisioning: 'yes' }, /needsProvisioning "yes" is not true or false/],
  ]
  for (const [name, props, wanted] of cases) {
    class Bad extends MemoryDriver {}
    for (const [k, v] of Object.entries(props)) Object.defineProperty(Bad.prototype, k, { get: () => v })
    store.registerDriver(name, Bad)
    const e = await rejection(store.create(name, { driver: name, options: { 'memory-url': 'tcp://x:1' } }))
    assert.equal(e.code, 'Driver', name)
    assert.match(e.message, wanted)
  }
  class Port2377 extends MemoryDriver {
    get enginePort() {
      return 2377
    }
  }
  store.registerDriver('port-2377', Port2377)
  const m = await store.create('ok', { driver: 'port-2377', options: { 'memory-url': 'tcp://127.0.0.1:2377' } })
  assert.equal(m.driverName, 'port-2377')
  assert.deepEqual(await store.names(), ['ok'])
})

test('the event loop keeps running while a machine is slow to answer', async (t) => {
  // A daemon that accepts connections and never answers: list() waits for
  // the full timeout on the runtime, not on the event loop.
  const sockets = new Set()
  const server = createServer((s) => sockets.add(s))
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  t.after(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  const store = tempStore(t)
  await store.create('slow', { driver: 'none', options: { url: `tcp://127.0.0.1:${server.address().port}` } })
  let ticks = 0
  const timer = setInterval(() => ticks++, 20)
  const started = Date.now()
  const [row] = await store.list({ timeout: 1.5 })
  clearInterval(timer)
  const elapsed = Date.now() - started
  assert.ok(elapsed >= 1000, `list waited for the machine (${elapsed} ms)`)
  assert.ok(ticks >= (elapsed / 20) * 0.5, `${ticks} ticks in ${elapsed} ms`)
  assert.equal(row.name, 'slow')
  assert.notEqual(row.error, '', 'the silent daemon is reported')
})

test('a slow JavaScript driver does not hold up other calls', async (t) => {
  const store = tempStore(t)
  let release
  const gate = new Promise((r) => (release = r))
  class Slow extends MemoryDriver {
    async create() {
      await gate
      this.running = true
    }
  }
  store.registerDriver('slow', Slow)
  await store.create('quick', { driver: 'none', options: URL_OPTS })
  const creating = store.create('slow1', { driver: 'slow', options: { 'memory-url': 'tcp://127.0.0.1:1' } })
  // While create() waits on JavaScript, the store answers other calls.
  for (let i = 0; i < 5; i++) {
    assert.equal(await (await store.get('quick')).state(), 'Running')
  }
  release()
  const m = await creating
  assert.equal(await m.state(), 'Running')
})
