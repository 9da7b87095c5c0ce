// The package as its users get it: loading with require and import, the
// README's example, and the TypeScript declarations.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { pkgDir, readmeExample, runNode, tempDir, tempProject } from './helpers.mjs'

test('the package loads with require and with import', async (t) => {
  const project = tempProject(t)
  const cjs = await runNode(
    project,
    'load.cjs',
    "const m = require('docker-machine-rs'); console.log(typeof m.Store, typeof m.Host)",
  )
  assert.equal(cjs.stdout.trim(), 'function function')
  const esm = await runNode(
    project,
    'load.mjs',
    "import { Store, Host } from 'docker-machine-rs'; import pkg from 'docker-machine-rs'; console.log(typeof Store, typeof Host, pkg.Store === Store)",
  )
  assert.equal(esm.stdout.trim(), 'function function true')
})

test('the README example without network runs as written', async (t) => {
  const project = tempProject(t)
  const store = join(tempDir(t), 'store')
  const { stdout } = await runNode(project, 'example.mjs', readmeExample('none'), { MACHINE_STORAGE_PATH: store })
  assert.match(stdout, /^example-local none Running$/m)
  assert.match(stdout, /^export DOCKER_HOST="tcp:\/\/127\.0\.0\.1:2376"$/m)
  assert.match(stdout, /^set -gx DOCKER_HOST "tcp:\/\/127\.0\.0\.1:2376";$/m)
  assert.match(stdout, /^\[ 'example-local' \]$/m)
  assert.match(stdout, /^NotFound no-such-machine$/m)
})

test('index.d.ts types a TypeScript program (tsc --noEmit)', async () => {
  const tsc = join(pkgDir, 'node_modules', 'typescript', 'bin', 'tsc')
  try {
    await promisify(execFile)(process.execPath, [tsc, '-p', join(pkgDir, 'test', 'types')], { cwd: pkgDir })
  } catch (e) {
    assert.fail(`tsc failed:\n${e.stdout}${e.stderr}`)
  }
})
