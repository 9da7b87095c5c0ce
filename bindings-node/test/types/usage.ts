// Compiled with `tsc --noEmit` by test/package.test.mjs: the declarations in
// index.d.ts must accept this program and reject the marked mistakes.
import {
  Store,
  Host,
  type ListEntry,
  type SshOutput,
  type MachineDriver,
  type MachineDriverFactory,
  type DriverContext,
  type MachineError,
  type SwarmNode,
  type SwarmMembers,
  swarmOptions,
} from '../../index.js'

class MemoryDriver implements MachineDriver {
  static options = [{ flag: 'memory-url', required: true }, { flag: 'memory-weight', kind: 'int' as const, default: 3 }]
  url_: string
  constructor(readonly context: DriverContext, options: Record<string, any>) {
    this.url_ = String(options['memory-url'])
  }
  readonly needsProvisioning = false
  save() {
    return { 'memory-url': this.url_ }
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

const driverClass: MachineDriverFactory = MemoryDriver
const driverFunction: MachineDriverFactory = async (context: DriverContext) => new MemoryDriver(context, {})

export async function use(path?: string): Promise<number> {
  const store = new Store(path)
  store.registerDriver('memory', driverClass)
  store.registerDriver('memory2', driverFunction, [{ flag: 'memory-url', kind: 'string' }])
  const drivers: string[] = store.drivers()
  const m: Host = await store.create('m1', {
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
  const generic: Host = await store.create('m2')
  const worker: Host = await store.create('w1', {
    driver: 'none',
    options: { url: 'tcp://127.0.0.1:1' },
    swarm: { swarm: true, 'swarm-discovery': 'machine://m2', 'swarm-join-opt': ['availability=drain'] },
  })
  await generic.swarmInit({ onProgress: () => {} })
  await worker.swarmJoin('m2', { asManager: false })
  const nodes: SwarmNode[] = await worker.swarmNodes()
  const leader: boolean = nodes[0].leader
  const manager: Host = await worker.swarmManager()
  const members: SwarmMembers = await worker.swarmMembers()
  await worker.swarmLeave({ force: true })
  const swarmFlags: string[] = swarmOptions().map((o) => o.flag)
  // @ts-expect-error: swarmJoin names the manager
  await worker.swarmJoin()
  // @ts-expect-error: the driver is a name
  await store.create('m2', { driver: MemoryDriver })
  // @ts-expect-error: ssh takes the command
  await m.ssh()
  // @ts-expect-error: option values are strings, numbers, booleans or string lists
  await store.create('m3', { driver: 'none', options: { url: { nested: true } } })
  // @ts-expect-error: a class without ip() is not a driver
  store.registerDriver('bad', class { create() {} remove() {} state() { return '' } })
  console.log(leader, manager.name, members.workers.join(), swarmFlags.join())
  return [name, driverName, generic.name, drivers.join(), state, text, flags.join(), String(inspected), String(status), String(ms), names.join()]
    .length + Object.keys(vars).length
}
