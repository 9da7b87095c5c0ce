// The amazonec2 driver from JavaScript, options keyed by the CLI's flag
// names, against the EC2 emulator moto on loopback. The full create lands on
// the suite's test host (index 7, as in e2e.test.mjs): the instance's private
// address comes from a subnet whose whole CIDR the host answers for (`ip
// route add local CIDR dev lo` inside its namespace, a route via the host
// outside), so SSH and Docker reach the host and nothing else. The other
// create fails on purpose once the key pair and the security group exist (a
// user-data file that is not there); the machine stays in state Error and
// remove cleans up.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { busyboxTarball, docker } from './helpers.mjs'
import { ciIsSet, forSuite } from './testhosts.mjs'

const require = createRequire(import.meta.url)
const { Store } = require('..')

const haveMoto = spawnSync('moto_server', ['--help'], { stdio: 'ignore' }).status === 0
const skip = haveMoto ? false : "moto_server is not installed (python3 -m pip install 'moto[server]')"

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

async function startMoto(t) {
  const port = await freePort()
  const proc = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' })
  t.after(() => proc.kill('SIGKILL'))
  const deadline = Date.now() + 30000
  for (;;) {
    const up = await new Promise((resolve) => {
      const c = connect(port, '127.0.0.1', () => { c.end(); resolve(true) })
      c.on('error', () => resolve(false))
    })
    if (up) return `127.0.0.1:${port}`
    if (Date.now() > deadline) assert.fail('moto_server did not start')
    await new Promise((r) => setTimeout(r, 100))
  }
}

/**
 * One EC2 query call to moto, which does not check signatures by default but
 * picks the service from the credential scope of the Authorization header.
 */
async function ec2(endpoint, action, params = {}) {
  const body = new URLSearchParams({ Action: action, Version: '2016-11-15', ...params })
  const headers = {
    authorization: 'AWS4-HMAC-SHA256 Credential=AKIDNODE/20250101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0',
  }
  const r = await fetch(`http://${endpoint}/`, { method: 'POST', body, headers })
  const text = await r.text()
  assert.ok(r.ok, `${action}: ${text}`)
  return text
}

const HOST_INDEX = 7 // the node suite's host (test-support/hosts.json)
// moto's default VPC: unreachable while a test routes, so that an instance
// placed there could never send traffic out through the default route
const MOTO_DEFAULT_VPC = '172.31.0.0/16'

/** Route a CIDR to the suite's host for the test's lifetime: [hosts, cidr]. */
function routedSubnet(t, hosts) {
  const host = hosts.host(HOST_INDEX)
  assert.ok(host.name, 'MT_HOST_NAMES names the test hosts')
  const cidr = `10.${199 + HOST_INDEX}.${host.addr.split('.')[2]}.0/24`
  const ip = (...args) => {
    const r = spawnSync('ip', args, { encoding: 'utf8' })
    assert.equal(r.status, 0, `ip ${args.join(' ')}: ${r.stderr}`)
  }
  t.after(() => {
    spawnSync('ip', ['route', 'del', cidr])
    spawnSync('ip', ['netns', 'exec', host.name, 'ip', 'route', 'del', 'local', cidr, 'dev', 'lo'])
    spawnSync('ip', ['route', 'del', 'unreachable', MOTO_DEFAULT_VPC])
  })
  ip('route', 'replace', 'unreachable', MOTO_DEFAULT_VPC)
  ip('netns', 'exec', host.name, 'ip', 'route', 'replace', 'local', cidr, 'dev', 'lo')
  ip('route', 'replace', cidr, 'via', host.addr)
  return cidr
}

const tag = (xml, name) => [...xml.matchAll(new RegExp(`<${name}>([^<]*)</${name}>`, 'g'))].map((m) => m[1])

test('amazonec2 create with flag-named options, then remove', { skip: !ciIsSet() && skip }, async (t) => {
  if (skip) assert.fail(skip)
  for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k]
  process.env.AWS_EC2_METADATA_DISABLED = 'true'
  const endpoint = await startMoto(t)
  const dir = mkdtempSync(join(tmpdir(), 'dmrs-ec2-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const vpc = tag(await ec2(endpoint, 'CreateVpc', { CidrBlock: '10.251.0.0/24' }), 'vpcId')[0]
  const subnet = tag(
    await ec2(endpoint, 'CreateSubnet', { VpcId: vpc, CidrBlock: '10.251.0.0/24', AvailabilityZone: 'us-east-1a' }),
    'subnetId',
  )[0]
  const store = new Store(join(dir, 'store'))
  const err = await store
    .create('node-ec2', {
      driver: 'amazonec2',
      options: {
        'amazonec2-endpoint': endpoint,
        'amazonec2-insecure-transport': true,
        'amazonec2-access-key': 'AKIDNODE',
        'amazonec2-secret-key': 'node-secret',
        'amazonec2-subnet-id': subnet,
        'amazonec2-ami': 'ami-12345678',
        'amazonec2-private-address-only': true,
        'amazonec2-open-port': ['9000'],
        'amazonec2-userdata': join(dir, 'no-such-user-data'),
      },
    })
    .then(() => assert.fail('create should fail'), (e) => e)
  assert.match(String(err.message), /amazonec2-userdata/)
  const m = await store.get('node-ec2')
  assert.equal(await m.state(), 'Error')
  assert.ok(tag(await ec2(endpoint, 'DescribeKeyPairs'), 'keyName').includes('node-ec2'))
  const groups = await ec2(endpoint, 'DescribeSecurityGroups', { 'Filter.1.Name': 'group-name', 'Filter.1.Value.1': 'docker-machine' })
  assert.deepEqual(tag(groups, 'fromPort').sort(), ['22', '2376', '9000'])
  await store.remove('node-ec2')
  assert.deepEqual(await store.names(), [])
  assert.ok(!tag(await ec2(endpoint, 'DescribeKeyPairs'), 'keyName').includes('node-ec2'))
  assert.deepEqual(tag(await ec2(endpoint, 'DescribeSecurityGroups', { 'Filter.1.Name': 'group-name', 'Filter.1.Value.1': 'docker-machine' }), 'groupId'), [])
})

const suite = forSuite('node')
const fullSkip = suite.skip || (!ciIsSet() && skip) || (process.getuid() !== 0 && !ciIsSet() && 'routes to the test host need root')

test('amazonec2 full create with flag-named options: the docker CLI runs a container, then remove', { skip: fullSkip }, async (t) => {
  if (skip) assert.fail(skip)
  for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k]
  process.env.AWS_EC2_METADATA_DISABLED = 'true'
  process.env.AWS_ACCESS_KEY_ID = 'AKIDNODEENV'
  process.env.AWS_SECRET_ACCESS_KEY = 'node-env-secret'
  const cidr = routedSubnet(t, suite)
  const endpoint = await startMoto(t)
  const dir = mkdtempSync(join(tmpdir(), 'dmrs-ec2-full-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const vpc = tag(await ec2(endpoint, 'CreateVpc', { CidrBlock: cidr }), 'vpcId')[0]
  const subnet = tag(await ec2(endpoint, 'CreateSubnet', { VpcId: vpc, CidrBlock: cidr, AvailabilityZone: 'us-east-1a' }), 'subnetId')[0]
  await ec2(endpoint, 'ImportKeyPair', {
    KeyName: 'mt-key',
    PublicKeyMaterial: readFileSync(`${suite.key}.pub`).toString('base64'),
  })
  const ami = tag(await ec2(endpoint, 'DescribeImages'), 'imageId')[0]
  const store = new Store(join(dir, 'store'))
  const steps = []
  const m = await store.create('node-ec2-full', {
    driver: 'amazonec2',
    options: {
      'amazonec2-endpoint': endpoint,
      'amazonec2-insecure-transport': true,
      'amazonec2-subnet-id': subnet,
      'amazonec2-ami': ami,
      'amazonec2-instance-type': 't3.small',
      'amazonec2-private-address-only': true,
      'amazonec2-keypair-name': 'mt-key',
      'amazonec2-ssh-keypath': suite.key,
      'amazonec2-ssh-user': 'root',
      'amazonec2-tags': 'suite,node',
    },
    engine: { 'engine-opt': ['bridge=none', 'iptables=false', 'ip6tables=false'], 'engine-install-url': 'none' },
    onProgress: (step) => steps.push(step),
  })
  assert.equal(steps.at(-1), 'Docker is up and running!')
  assert.equal(await m.state(), 'Running')
  const saved = (await m.inspect()).Driver
  assert.ok(saved.IPAddress.startsWith(cidr.replace(/0\/24$/, '')), saved.IPAddress)
  assert.equal(saved.AccessKey, 'AKIDNODEENV')
  const described = await ec2(endpoint, 'DescribeInstances', { 'InstanceId.1': saved.InstanceId })
  assert.deepEqual(tag(described, 'instanceType'), ['t3.small'])
  assert.ok(tag(described, 'value').includes('node'))

  const tarball = await busyboxTarball(dir)
  await docker(m, dir, 'import', tarball, 'mt-busybox:node-ec2')
  const said = await docker(m, dir, 'run', '--rm', '--network', 'none', 'mt-busybox:node-ec2', 'echo', 'hello-from-node-ec2')
  assert.equal(said.trim(), 'hello-from-node-ec2')

  await store.remove('node-ec2-full')
  assert.deepEqual(await store.names(), [])
  const after = await ec2(endpoint, 'DescribeInstances', { 'InstanceId.1': saved.InstanceId })
  assert.ok(tag(after, 'name').includes('terminated'), after)
  assert.deepEqual(tag(await ec2(endpoint, 'DescribeSecurityGroups', { 'Filter.1.Name': 'group-name', 'Filter.1.Value.1': 'docker-machine' }), 'groupId'), [])
})
