// Shared by the tests: temporary projects that depend on this package, the
// code blocks of the README, the busybox test image and the docker CLI.
import assert from 'node:assert/strict'
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { execFile } from 'node:child_process'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

export const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '..')
export const repoDir = resolve(pkgDir, '..')
const run = promisify(execFile)

/** A temporary directory removed after the test. */
export function tempDir(t, prefix = 'dmrs-node-') {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A project directory in which `docker-machine-rs` resolves to this package. */
export function tempProject(t) {
  const dir = tempDir(t, 'dmrs-project-')
  mkdirSync(join(dir, 'node_modules'))
  symlinkSync(pkgDir, join(dir, 'node_modules', 'docker-machine-rs'), 'dir')
  return dir
}

/** Run `code` as file `name` of `project` with Node; resolves with its output. */
export async function runNode(project, name, code, env = {}) {
  writeFileSync(join(project, name), code)
  return run(process.execPath, [name], {
    cwd: project,
    env: { ...process.env, ...env },
    timeout: 600_000,
    maxBuffer: 16 * 1024 * 1024,
  })
}

/** The README's code block that follows the marker `<!-- example: NAME -->`. */
export function readmeExample(name) {
  const text = readFileSync(join(pkgDir, 'README.md'), 'utf8')
  const m = new RegExp(`<!-- example: ${name} -->\\s*\`\`\`js\\n([\\s\\S]*?)\`\`\``).exec(text)
  if (!m) throw new Error(`README.md has no example ${name}`)
  return m[1]
}

/** A root file system of a static busybox, as a tarball for `docker import`. */
export async function busyboxTarball(dir) {
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p))
  assert.ok(busybox, 'busybox is missing (apt-get install busybox-static)')
  const root = join(dir, 'rootfs')
  mkdirSync(join(root, 'bin'), { recursive: true })
  copyFileSync(busybox, join(root, 'bin', 'busybox'))
  chmodSync(join(root, 'bin', 'busybox'), 0o755)
  for (const applet of ['sh', 'echo', 'cat', 'hostname', 'true']) symlinkSync('busybox', join(root, 'bin', applet))
  const tarball = join(dir, 'busybox.tar')
  await run('tar', ['-C', root, '--owner=0', '--group=0', '-cf', tarball, '.'])
  return tarball
}

/** Run the real `docker` CLI with a machine's environment. */
export async function docker(machine, dir, ...args) {
  const env = { ...process.env, ...(await machine.envVars()), DOCKER_CONFIG: join(dir, 'docker-config') }
  try {
    return (await run('docker', args, { env, maxBuffer: 16 * 1024 * 1024 })).stdout
  } catch (e) {
    assert.fail(`docker ${args.join(' ')} failed:\n${e.stdout}${e.stderr}`)
  }
}
