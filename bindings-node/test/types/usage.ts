// Compiled with `tsc --noEmit` by test/package.test.mjs: the declarations in
// index.d.ts must accept this program and reject the marked mistakes.
import {
  Store,
  Machine,
  type ListEntry,
  type SshOutput,
  type MachineDriver,
  type MachineDriverClass,
  type DriverContext,
  type MachineError,
} from '../../index.js'

class MemoryDriver implements MachineDriver {
  static options = [{ flag: 'memory-url', required: true }, { flag: 'memory-weight', kind: 'int' as const, default: 3 }]
  url_: string
  constructor(readonly context: DriverContext, options: Record<string, string | number | boolean | string[]>) {
    this.url_ = String(options['memory-url'])
  }
  static load(context: DriverContext, saved: Record<string, unknown>): MemoryDriver {
    return new MemoryDriver(context, { 'memory-url': String(saved.Url) })
  }
  readonly needsProvisioning = false
  save() {
    return { Url: this.url_ }
  }
  async create() {}
  async remove() {}
  async state() {
    return 'Running'
  }
  ip() {
    return '127.0.0.1'
  }
}

const driverClass: MachineDriverClass = MemoryDriver

export async function use(path?: string): Promise<number> {
  const store = new Store(path)
  store.registerDriver('memory', driverClass)
  const m: Machine = await store.create('m1', {
    driver: 'memory',
    options: { 'memory-url': 'tcp://127.0.0.1:1', 'memory-weight': 2 },
    engine: { 'engine-opt': ['log-level=debug'], 'engine-install-url': 'none' },
    onProgress: (step: string) => console.log(step),
  })
  const name: string = m.name
  const driverName: string = m.driverName
  const state: string = await m.state()
  const text: string = await m.env({ shell: 'fish', unset: false, noProxy: true })
  const vars: Record<string, string> = await m.envVars()
  const flags: string[] = await m.config()
  const inspected: Record<string, any> = await m.inspect()
  const out: SshOutput = await m.ssh('true')
  const status: number = out.exitStatus
  await m.copyTo('/tmp/a', '/tmp/b')
  await m.copyFrom('/tmp/b', '/tmp/c')
  await m.regenerateCerts({ clientCerts: true, onProgress: () => {} })
  await m.provision()
  await m.upgrade({})
  await Promise.all([m.start(), m.stop(), m.restart(), m.kill()])
  const rows: ListEntry[] = await store.list({ timeout: 5 })
  const ms: number = rows[0].responseTimeMs
  await store.remove('m1', { force: true })
  const names: string[] = await store.names()
  try {
    await store.get('missing')
  } catch (e) {
    const err = e as MachineError
    const code: string = err.code
    const machine: string | undefined = err.machine
    console.log(code, machine)
  }
  // @ts-expect-error: the driver is required
  await store.create('m2', {})
  // @ts-expect-error: ssh takes the command
  await m.ssh()
  // @ts-expect-error: option values are strings, numbers, booleans or string lists
  await store.create('m3', { driver: 'none', options: { url: { nested: true } } })
  // @ts-expect-error: a class without load() is not a driver class
  store.registerDriver('bad', class { create() {} remove() {} state() { return '' } ip() { return '' } })
  return [name, driverName, state, text, flags.join(), String(inspected), String(status), String(ms), names.join()]
    .length + Object.keys(vars).length
}
