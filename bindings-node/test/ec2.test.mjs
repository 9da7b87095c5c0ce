// The amazonec2 driver from JavaScript, options keyed by the CLI's flag
// names, against the EC2 emulator moto on loopback. The create fails on
// purpose once the key pair and the security group exist (a user-data file
// that is not there), so nothing connects to an address moto hands out; the
// machine stays in state Error and remove cleans up.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { ciIsSet } from './testhosts.mjs'

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
